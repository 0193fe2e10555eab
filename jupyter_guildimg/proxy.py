"""TensorBoard behind the Jupyter server: ``<base_url>guildimg/tensorboard/``.

Built on jupyter-server-proxy's ``ProxyHandler`` (authentication on every
request, streaming, header handling). TensorBoard runs with ``--path_prefix``
set to this route, so requests are forwarded with their full path
(``absolute_url``). TensorBoard's own XHR and POST requests carry no Jupyter
XSRF token: on this route only, a state-changing request must instead come
from the server's own origin (``Origin``, else ``Referer``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import ProxyHandler
from tornado import web

if TYPE_CHECKING:
    from .app import GuildImgApp

__all__ = ["proxy_handlers"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Jupyter's credentials are not TensorBoard's business.
_PRIVATE_HEADERS = ("Cookie", "Authorization", "X-Xsrftoken")


class TensorBoardProxyHandler(ProxyHandler):
    """Proxies to the server's TensorBoard process, starting it on first use and
    showing a "starting…" page (503, reloading itself) until it answers."""

    def initialize(self, proxy_base: str) -> None:
        self.proxy_base = proxy_base

    @property
    def guildimg(self) -> GuildImgApp:
        return self.settings["guildimg"]

    def check_xsrf_cookie(self) -> None:
        if self.request.method in _SAFE_METHODS:
            return
        origin = self.request.headers.get("Origin") or _origin_of(
            self.request.headers.get("Referer", "")
        )
        if not origin:
            raise web.HTTPError(403, "TensorBoard request without Origin or Referer refused")
        host = self.request.headers.get("Host", "")
        if urlparse(origin.lower()).netloc != host.lower() and not (
            self.allow_origin == "*"
            or (self.allow_origin and self.allow_origin == origin)
            or (self.allow_origin_pat and self.allow_origin_pat.match(origin))
        ):
            raise web.HTTPError(403, f"cross-origin TensorBoard request from {origin} refused")

    def _get_context_path(self, host: str, port: int) -> str:
        # Decoded: the proxy quotes the path it forwards, and base_url is quoted
        # already ("/a%40b/" must reach TensorBoard as "/a%40b/", not "/a%2540b/").
        return unquote(url_path_join(self.base_url, self.proxy_base))

    def proxy_request_headers(self) -> Any:
        headers = super().proxy_request_headers()
        for name in _PRIVATE_HEADERS:
            headers.pop(name, None)
        return headers

    async def http_get(self, path: str = "") -> None:
        await self._forward(path)

    async def open(self, path: str = "") -> None:
        raise web.HTTPError(400, "TensorBoard is not served over websockets")

    async def post(self, path: str = "") -> None:
        if self.guildimg.tensorboard.status != "ready":
            # The "Retry" button of the failure page.
            self.guildimg.start_tensorboard_soon()
            self.redirect(self.request.path, status=303)
            return
        await self._forward(path)

    async def put(self, path: str = "") -> None:
        await self._forward(path)

    async def delete(self, path: str = "") -> None:
        await self._forward(path)

    async def patch(self, path: str = "") -> None:
        await self._forward(path)

    async def head(self, path: str = "") -> None:
        await self._forward(path)

    async def options(self, path: str = "") -> None:
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        tensorboard = self.guildimg.tensorboard
        if tensorboard.status != "ready" or tensorboard.port is None:
            self._not_ready()
            return
        # "" would lose the root page's trailing slash in the proxy's path join.
        await self.proxy("127.0.0.1", tensorboard.port, path or "/")

    def _not_ready(self) -> None:
        tensorboard = self.guildimg.tensorboard
        if tensorboard.status == "failed":
            tail = "\n".join(tensorboard.state().get("stderr_tail", [])[-15:])
            body = _FAILED_PAGE.format(
                reason=html.escape(tensorboard.reason or "it stopped"),
                tail=html.escape(tail),
                xsrf=self.xsrf_form_html(),
            )
        else:
            self.guildimg.start_tensorboard_soon()
            body = _STARTING_PAGE
        self.set_status(503)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class _AddSlashHandler(JupyterHandler):
    """``…/tensorboard`` → ``…/tensorboard/``: TensorBoard's asset URLs are relative."""

    @web.authenticated
    def get(self) -> None:
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(self.request.path + "/" + query, permanent=False)


def _origin_of(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def proxy_handlers(prefix: str) -> list[tuple[Any, ...]]:
    """URL patterns (relative to the server's base_url) and their handlers."""
    return [
        (prefix, _AddSlashHandler),
        (
            url_path_join(prefix, r"(?P<path>.*)"),
            TensorBoardProxyHandler,
            {"proxy_base": prefix, "absolute_url": True},
        ),
    ]


_STARTING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="1">
<title>Starting TensorBoard…</title>
<style>body{font:14px system-ui,sans-serif;color:#555;display:flex;align-items:center;
justify-content:center;height:90vh}</style></head>
<body><p>Starting TensorBoard… this page reloads until it is ready.</p></body></html>
"""

_FAILED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TensorBoard failed</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}pre{{background:#f4f4f4;
padding:1em;overflow:auto}}</style></head>
<body><h3>TensorBoard is not running</h3><p>{reason}</p><pre>{tail}</pre>
<form method="post">{xsrf}<button type="submit">Retry</button></form></body></html>
"""
