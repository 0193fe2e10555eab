"""The REST API under ``<base_url>guildimg/api/``. Every verb needs Jupyter
authentication (403 without it); errors are JSON with a ``message``.

Change feed: ``GET changes?since=G`` is a long poll. It answers with
``{"generation": N}`` as soon as a monitor pass has changed something since
generation ``G`` (or after ``timeout`` seconds, default 30, with N unchanged).
Clients keep the last N and ask again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .app import GuildImgApp
from .catalog import NotFoundError

__all__ = ["api_handlers"]

_RUN = r"(?P<key>[^/]+)"
_MAX_WAIT = 60.0


class _BaseHandler(APIHandler):
    @property
    def guildimg(self) -> GuildImgApp:
        return self.settings["guildimg"]

    def write_json(self, value: Any) -> None:
        self.finish(json.dumps(value))

    def int_argument(self, name: str, low: int, high: int) -> int | None:
        text = self.get_argument(name, None)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            raise web.HTTPError(400, f"{name} must be between {low} and {high}")
        return value


class StatusHandler(_BaseHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(self.guildimg.status())


class RunsHandler(_BaseHandler):
    @web.authenticated
    def get(self) -> None:
        # Tornado answers 304 by itself when If-None-Match matches this body's ETag.
        image = self.get_argument("image", None)
        self.write_json({"runs": self.guildimg.catalog.runs(image)})


class ImagesHandler(_BaseHandler):
    @web.authenticated
    def get(self, key: str) -> None:
        try:
            self.write_json(self.guildimg.catalog.images(key))
        except NotFoundError as e:
            raise web.HTTPError(404, str(e)) from None


class ImageHandler(_BaseHandler):
    @web.authenticated
    async def get(self, key: str, path: str) -> None:
        revision = self.int_argument("rev", 0, 9_999_999_999)
        width = self.int_argument("thumb", 1, 100_000)
        catalog = self.guildimg.catalog
        loop = asyncio.get_running_loop()
        try:
            if width is None:
                image = await loop.run_in_executor(None, catalog.image, key, path, revision)
            else:
                image = await loop.run_in_executor(
                    None, catalog.thumbnail, key, path, width, revision
                )
        except NotFoundError as e:
            raise web.HTTPError(404, str(e)) from None
        if revision is None:
            # The newest revision changes: revalidate (the ETag makes that cheap).
            self.set_header("Cache-Control", "private, no-cache")
        else:
            self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.set_header("X-Guildimg-Revision", str(image.revision))
        self.finish(image.data, set_content_type=image.content_type)


class RefreshHandler(_BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        monitor = self.guildimg.monitor
        report = await asyncio.get_running_loop().run_in_executor(None, monitor.run_pass)
        self.write_json(report.to_json())


class TensorBoardHandler(_BaseHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(self.guildimg.tensorboard.state())

    @web.authenticated
    async def post(self) -> None:
        tensorboard = self.guildimg.tensorboard
        if tensorboard.status in ("ready", "starting"):
            await tensorboard.restart()
        else:
            await tensorboard.start()
        self.write_json(tensorboard.state())

    @web.authenticated
    async def delete(self) -> None:
        await self.guildimg.tensorboard.stop()
        self.write_json(self.guildimg.tensorboard.state())


class SourcesHandler(_BaseHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json({"sources": self.guildimg.source_paths})

    @web.authenticated
    def post(self) -> None:
        try:
            path = json.loads(self.request.body or b"{}")["path"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, 'expected a JSON body {"path": "..."}') from None
        if not isinstance(path, str) or not path:
            raise web.HTTPError(400, "path must be a non-empty string")
        try:
            self.guildimg.add_source(path)
        except FileNotFoundError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json({"sources": self.guildimg.source_paths})


class ChangesHandler(_BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        since = self.int_argument("since", -1, 2**62)
        timeout = self.get_argument("timeout", "30")
        try:
            wait = min(max(float(timeout), 0.0), _MAX_WAIT)
        except ValueError:
            raise web.HTTPError(400, f"timeout must be a number, not {timeout!r}") from None
        changes = self.guildimg.changes
        generation = await changes.wait(-1 if since is None else since, wait)
        self.write_json({"generation": generation})


class NotFoundHandler(_BaseHandler):
    @web.authenticated
    def get(self, path: str) -> None:
        raise web.HTTPError(404, f"no API route {path!r}")

    post = put = delete = patch = get


def api_handlers(prefix: str) -> list[tuple[str, type[APIHandler]]]:
    """URL patterns (relative to the server's base_url) and their handlers."""
    return [
        (url_path_join(prefix, "status"), StatusHandler),
        (url_path_join(prefix, "runs"), RunsHandler),
        (url_path_join(prefix, "runs", _RUN, "images"), ImagesHandler),
        (url_path_join(prefix, "runs", _RUN, "images", r"(?P<path>.+)"), ImageHandler),
        (url_path_join(prefix, "refresh"), RefreshHandler),
        (url_path_join(prefix, "tensorboard"), TensorBoardHandler),
        (url_path_join(prefix, "sources"), SourcesHandler),
        (url_path_join(prefix, "changes"), ChangesHandler),
        (url_path_join(prefix, r"(?P<path>.*)"), NotFoundHandler),
    ]
