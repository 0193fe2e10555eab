"""The REST API under ``<base_url>guildimg/api/``, as :mod:`jupyter_guildimg.rest`
defines it (routes, parameters, bodies). Every verb needs Jupyter authentication (403
without it) and the Authorizer's consent on the resource ``guildimg`` (403 without
it): ``read`` for every GET, ``write`` for ``POST refresh``, ``POST``/``DELETE
sources`` and ``PUT selection``, ``execute`` for ``POST``/``DELETE tensorboard`` (they
start and stop a process). Errors are :class:`~jupyter_guildimg.rest.Error`
(``{"message": ...}``).

Change feed: ``GET changes?since=G`` is a long poll. It answers with
``{"generation": N}`` as soon as a monitor pass has changed something since
generation ``G`` (or after ``timeout`` seconds, default 30, with N unchanged).
Clients keep the last N and ask again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from .. import rest
from ..engine.catalog import NotFoundError
from ..engine.layout import SourceError
from ..engine.selection import SelectionError
from ..engine.service import CaptureOffError
from ..engine.thumbnails import THUMB_MAX, THUMB_MIN, ThumbnailError
from .monitorclient import MonitorUnavailable
from .proxy import AUTH_RESOURCE

if TYPE_CHECKING:  # the app imports this module
    from .app import GuildImgApp

__all__ = ["api_handlers"]

_KEY = r"(?P<key>[^/]+)"
_PATH = r"(?P<path>.+)"
_MAX_WAIT = 60.0


class _BaseHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def guildimg(self) -> GuildImgApp:
        """The extension app (jupyter_server's ``extensionapp``), typed."""
        return cast("GuildImgApp", self.extensionapp)

    async def call(self, name: str, *args: Any) -> Any:
        """The monitor's ``name(*args)``; 503 while its process is being restarted."""
        try:
            return await self.guildimg.call(name, *args)
        except MonitorUnavailable as e:
            raise web.HTTPError(503, f"the monitor is not running: {e}") from None

    def write_json(self, value: Mapping[str, object]) -> None:
        """Answer ``value``, one of :mod:`~jupyter_guildimg.rest`'s bodies."""
        self.finish(json.dumps(value))

    def json_body(self, expected: str) -> Any:
        """The request's JSON body ({} when empty); 400 saying ``expected`` when it is
        not JSON, or nests too deeply for the parser."""
        try:
            return json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise web.HTTPError(400, f"expected a JSON body {expected}") from None

    def source_argument(self) -> str:
        """``path`` of the JSON body (POST) or of the query (DELETE): a non-empty string."""
        if self.request.method == "DELETE":
            path: Any = self.get_argument(rest.PARAM_PATH, "")
        else:
            expected = f'{{"{rest.PARAM_PATH}": "..."}}'
            body = self.json_body(expected)
            if not isinstance(body, dict) or rest.PARAM_PATH not in body:
                raise web.HTTPError(400, f"expected a JSON body {expected}")
            path = body[rest.PARAM_PATH]
        if not isinstance(path, str) or not path:
            raise web.HTTPError(400, "path must be a non-empty string")
        return path

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
    @authorized
    async def get(self) -> None:
        self.write_json(await self.guildimg.status())


class RunsHandler(_BaseHandler):
    """``GET runs?image=P&q=TEXT``: the runs, newest first; ``image`` keeps those that
    captured that image path, ``q`` those whose fields hold every word of TEXT
    (:func:`~jupyter_guildimg.engine.catalog.run_matches`)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        image = self.get_argument(rest.PARAM_IMAGE, None)
        q = self.get_argument(rest.PARAM_Q, None)
        # Off the event loop: at 100,000 runs the body is ~30 MB, and Jupyter's own
        # requests go on meanwhile (hashing it releases the interpreter lock).
        loop = asyncio.get_running_loop()
        body = await self.call("runs_body", image, q)
        etag = await loop.run_in_executor(None, _etag, body)
        self.set_header("Content-Type", "application/json")
        self.set_header("Etag", etag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.finish(body)


def _etag(body: bytes) -> str:
    """The ETag Tornado would give ``body`` (it skips its own once one is set)."""
    return f'"{hashlib.sha1(body).hexdigest()}"'


class RunHandler(_BaseHandler):
    """``GET runs/<key>``: the run ``key`` names (an id or a unique prefix:
    :meth:`~jupyter_guildimg.engine.catalog.Catalog.find`); 404 for none or several."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        try:
            self.write_json(await self.call("run", key))
        except NotFoundError as e:
            raise web.HTTPError(404, str(e)) from None


class ImagesHandler(_BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        try:
            self.write_json(await self.call("images", key))
        except NotFoundError as e:
            raise web.HTTPError(404, str(e)) from None


class ImageHandler(_BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, key: str, path: str) -> None:
        revision = self.int_argument(rest.PARAM_REV, 0, 9_999_999_999)
        width = self.int_argument(rest.PARAM_THUMB, THUMB_MIN, THUMB_MAX)
        try:
            if width is None:
                image = await self.call("image", key, path, revision)
            else:
                image = await self.call("thumbnail", key, path, width, revision)
        except NotFoundError as e:
            raise web.HTTPError(404, str(e)) from None
        except ThumbnailError as e:  # too large to decode for one: the image itself is served
            raise web.HTTPError(422, str(e)) from None
        if revision is None:
            # The newest revision changes: revalidate (the ETag makes that cheap).
            self.set_header("Cache-Control", "private, no-cache")
        else:
            self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.set_header("X-Guildimg-Revision", str(image.revision))
        self.finish(image.data, set_content_type=image.content_type)


class RefreshHandler(_BaseHandler):
    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        try:
            self.write_json(await self.call("run_pass"))
        except CaptureOffError as e:
            raise web.HTTPError(409, str(e)) from None


class TensorBoardHandler(_BaseHandler):
    """``GET``: TensorBoard's state. ``DELETE``: stop it; its state.

    ``POST``: start TensorBoard, idempotently: a TensorBoard that is ready is left
    as it is, one that is starting (started by another client, or restarting after a
    crash) is waited for, any other is started; the answer is its state once it is
    ready or failed. With the JSON body ``{"restart": true}`` a running TensorBoard is
    stopped first (an explicit restart). 400 for a body that is not a JSON object or
    a ``restart`` that is not a boolean."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(self.guildimg.tensorboard.state())

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        expected = f'{{"{rest.PARAM_RESTART}": true}}'
        body = self.json_body(expected)
        if not isinstance(body, dict):
            raise web.HTTPError(400, f"expected a JSON body {expected}")
        restart = body.get(rest.PARAM_RESTART, False)
        if not isinstance(restart, bool):
            raise web.HTTPError(400, f"{rest.PARAM_RESTART} must be true or false")
        tensorboard = self.guildimg.tensorboard
        if restart:
            await tensorboard.restart()
        else:
            await tensorboard.start()
        self.write_json(tensorboard.state())

    @web.authenticated
    @authorized("execute")
    async def delete(self) -> None:
        await self.guildimg.tensorboard.stop()
        self.write_json(self.guildimg.tensorboard.state())


class SourcesHandler(_BaseHandler):
    """``GET``: ``{"sources": [...]}``, the watched paths.

    ``POST`` with the body ``{"path": P}``: watch P too (``guild:``/``dir:`` prefixes
    allowed; relative to the root directory). 400 when P is not a directory, or when it
    contains the monitor's log dir or lies inside it (compared after resolving links).

    ``DELETE ?path=P`` (a query, not a body: P as ``GET`` lists it or as it was added):
    stop watching P. Its runs leave the log dir at the next pass, their summaries with
    them; the runs of the other sources stay. 404 when P is not watched.
    All three answer :class:`~jupyter_guildimg.rest.Sources`: the paths, and
    ``details`` (kind, whether it exists, a label relative to the root directory).
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call("sources"))

    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        path = self.source_argument()
        try:
            self.write_json(await self.call("add_source", path))
        except (FileNotFoundError, SourceError) as e:
            raise web.HTTPError(400, str(e)) from None

    @web.authenticated
    @authorized("write")
    async def delete(self) -> None:
        path = self.source_argument()
        try:
            self.write_json(await self.call("remove_source", path))
        except LookupError as e:
            raise web.HTTPError(404, str(e)) from None


class ChangesHandler(_BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        since = self.int_argument(rest.PARAM_SINCE, -1, 2**62)
        timeout = self.get_argument(rest.PARAM_TIMEOUT, "30")
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 0):  # nan compares false
            raise web.HTTPError(400, f"timeout must be a number of seconds >= 0, not {timeout!r}")
        wait = min(seconds, _MAX_WAIT)
        changes = self.guildimg.changes
        generation = await changes.wait(-1 if since is None else since, wait)
        body: rest.Changes = {"generation": generation}
        self.write_json(body)


class SelectionHandler(_BaseHandler):
    """``GET``: the runs TensorBoard shows (:class:`~jupyter_guildimg.rest.Selection`).

    ``PUT`` with a :class:`~jupyter_guildimg.rest.SelectionChange` body
    (``{"mode": "auto"}``, ``{"mode": "runs", "runs": [keys]}`` or ``{"mode":
    "filter", "filter": TEXT}``): TensorBoard shows those runs from now on, without a
    restart (it picks the change up within about a second); the answer is the new
    selection. A run key is anything ``runs/<key>`` takes and is answered as the run's
    ``id``. 400 with a message saying what is wrong for any other body, an unknown key,
    or a run key that names no run or several."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call("selection"))

    @web.authenticated
    @authorized("write")
    async def put(self) -> None:
        body = self.json_body('{"mode": "auto" | "runs" | "filter", ...}')
        try:
            selection = await self.call("put_selection", body)
        except SelectionError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json(selection)


class NotFoundHandler(_BaseHandler):
    # One action for every verb: the decorator keeps the action it first resolves.
    @web.authenticated
    @authorized("read")
    def get(self, path: str) -> None:
        raise web.HTTPError(404, f"no API route {path!r}")

    post = put = delete = patch = get


def api_handlers(prefix: str = rest.API_PREFIX) -> list[tuple[str, type[APIHandler]]]:
    """URL patterns (relative to the server's base_url) and their handlers."""
    return [
        (url_path_join(prefix, rest.STATUS), StatusHandler),
        (url_path_join(prefix, rest.RUNS), RunsHandler),
        (url_path_join(prefix, rest.RUN.format(key=_KEY)), RunHandler),
        (url_path_join(prefix, rest.RUN_IMAGES.format(key=_KEY)), ImagesHandler),
        (url_path_join(prefix, rest.RUN_IMAGE.format(key=_KEY, path=_PATH)), ImageHandler),
        (url_path_join(prefix, rest.REFRESH), RefreshHandler),
        (url_path_join(prefix, rest.TENSORBOARD), TensorBoardHandler),
        (url_path_join(prefix, rest.SOURCES), SourcesHandler),
        (url_path_join(prefix, rest.CHANGES), ChangesHandler),
        (url_path_join(prefix, rest.SELECTION), SelectionHandler),
        (url_path_join(prefix, r"(?P<path>.*)"), NotFoundHandler),
    ]
