"""TensorBoard behind the Jupyter server: ``<base_url>guildimg/tensorboard/``.

Built on jupyter-server-proxy's ``ProxyHandler`` (authentication on every request,
streaming, header handling). On top of it, every request is checked:

- authentication (``ProxyHandler.prepare``), then Jupyter's Authorizer on the
  resource ``guildimg``: ``read`` for every request forwarded to TensorBoard (its
  POSTs are queries: TensorBoard changes nothing), ``execute`` for a request that
  would start TensorBoard (a page opened while it is stopped, the Retry button);
  with ``read`` alone a stopped TensorBoard is answered 403 and no process starts;
- TensorBoard's own XHR and POST requests carry no Jupyter XSRF token: on this
  route only, a state-changing request must instead come from the server's own
  origin (``Origin``, else ``Referer``). It is checked after authentication, so a
  refused request costs one log line.

TensorBoard serves under a random secret path (``TensorBoardProcess.secret_prefix``):
requests go to ``127.0.0.1:<port>/<secret>/<path>``, and the secret is taken out of
what comes back (``Location`` headers, TensorBoard's JSON naming its path prefix)
and out of the proxy's log lines, so only the server knows it.

The handler reaches the extension app as jupyter_server's
``ExtensionHandlerMixin.extensionapp`` (this module does not import the app). Of
jupyter-server-proxy (>= 4.1) it relies only on ``ProxyHandler``'s public API: the
verbs it asks subclasses to implement and ``proxy(host, port, path)``, the
``absolute_url`` and ``rewrite_response`` arguments, and the public
``get_client_uri`` and ``proxy_request_headers`` methods. No private member is
overridden.
"""

from __future__ import annotations

import gzip
import html
import logging
import zlib
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote, urlparse

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import ProxyHandler
from tornado import web

if TYPE_CHECKING:
    from jupyter_server_proxy.handlers import RewritableResponse

    from ..engine.tbprocess import TensorBoardProcess

__all__ = ["AUTH_RESOURCE", "proxy_handlers"]

AUTH_RESOURCE = "guildimg"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Jupyter's credentials are not TensorBoard's business.
_PRIVATE_HEADERS = ("Cookie", "Authorization", "X-Xsrftoken")
# As jupyter-server-proxy quotes the paths it forwards (RFC 3986 reserved and unreserved).
_PATH_SAFE = ":/?#[]@!$&'()*+,;=-._~"
_MASK = "<tensorboard>"
# Where TensorBoard's page looks for its fonts, and where this proxy serves them.
_ROOT_FONTS = b"url(/font-roboto/"
_PAGE_FONTS = b"url(font-roboto/"
# Content types that can carry the secret path: what TensorBoard builds per request.
_SCANNED = frozenset({"application/json", "text/html", "text/plain", "text/xml", "application/xml"})


class _Masking(logging.LoggerAdapter):  # not subscripted: generic from Python 3.11 only
    """A logger that masks TensorBoard's secret path in messages (the proxy logs the
    URLs it forwards to at debug level)."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any], secret: str) -> None:
        super().__init__(logger, {})
        self.secret = secret

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        if isinstance(msg, str):
            msg = msg.replace(self.secret, _MASK)
        return msg, kwargs


class _TensorBoardHost(Protocol):
    """What the proxy needs of the extension app (``GuildImgApp``)."""

    @property
    def tensorboard(self) -> TensorBoardProcess: ...

    def start_tensorboard_soon(self) -> None: ...


class TensorBoardProxyHandler(ExtensionHandlerMixin, ProxyHandler):
    """Proxies to the server's TensorBoard process, starting it on first use (for a user
    allowed to) and showing a "starting…" page (503, reloading itself) until it answers."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str, proxy_base: str) -> None:
        super().initialize(name)  # ExtensionHandlerMixin: ``name`` finds the extension app
        # Read by ProxyHandler as the public path it serves ("{base_url}/{proxy_base}").
        self.proxy_base = proxy_base

        # A plain function: jupyter-server-proxy picks its arguments by their names.
        def hide_secret(response: RewritableResponse) -> None:
            self._hide_secret(response)

        self.rewrite_response = (hide_secret, _relative_fonts)
        self._served = ""  # TensorBoard's secret path for this request, once forwarded

    @property
    def _tensorboard(self) -> TensorBoardProcess:
        return cast("_TensorBoardHost", self.extensionapp).tensorboard

    def _start_tensorboard(self) -> None:
        cast("_TensorBoardHost", self.extensionapp).start_tensorboard_soon()

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[Any]:  # type: ignore[override]
        # JupyterHandler's log, the server's (ExtensionHandlerMixin's would be the
        # extension app's own logger, which does not propagate), with the secret masked:
        # an adapter where a Logger is declared, which only logging calls use.
        base: logging.Logger = super(ExtensionHandlerMixin, self).log
        if not hasattr(self, "name"):
            return base  # before initialize(): the extension app is not known yet
        tensorboard = self._tensorboard
        served = getattr(self, "_served", "") or tensorboard.served_prefix
        secret = served.removeprefix(tensorboard.path_prefix).lstrip("/")
        return _Masking(base, secret) if tensorboard.secret_prefix and secret else base

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(*args, **kwargs)  # authenticates: 302 to the login page, or 403
        if not self.current_user:
            return  # redirected to the login page
        if not await self._allowed("read"):
            raise web.HTTPError(403, f"not authorized to read {AUTH_RESOURCE}")
        if self.request.method not in _SAFE_METHODS:
            self._check_same_origin()

    def check_xsrf_cookie(self) -> None:
        """TensorBoard's requests carry no XSRF token: :meth:`prepare` checks the origin
        instead. (Tornado calls this before ``prepare``, before authentication.)"""

    def _check_same_origin(self) -> None:
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
            raise web.HTTPError(403, f"cross-origin TensorBoard request from {origin!r} refused")

    async def _allowed(self, action: str) -> bool:
        user = self.current_user
        if not user:
            return False
        allowed = self.authorizer.is_authorized(self, user, action, AUTH_RESOURCE)
        return bool(await ensure_async(allowed))

    def get_client_uri(self, protocol: str, host: str, port: int, proxied_path: str) -> str:
        # The path arrives decoded; quoted again as jupyter-server-proxy does.
        path = quote(f"{self._served}/{proxied_path.lstrip('/')}", safe=_PATH_SAFE)
        query = f"?{self.request.query}" if self.request.query else ""
        return f"{protocol}://{host}:{port}{path}{query}"

    def proxy_request_headers(self) -> Any:
        headers = super().proxy_request_headers()
        for name in _PRIVATE_HEADERS:
            headers.pop(name, None)
        return headers

    def _hide_secret(self, response: RewritableResponse) -> None:
        """Replace TensorBoard's secret path in headers and in bodies that may name it by
        the public one: it redirects to paths under it and names it in data/environment
        and data/plugins_listing (JSON). Bodies may be gzip-compressed. Its static assets
        (scripts, styles, fonts: megabytes) and binary data are not looked at."""
        tensorboard, served = self._tensorboard, self._served
        secret = served.removeprefix(tensorboard.path_prefix).lstrip("/")
        if not tensorboard.secret_prefix or not secret:
            return
        public = url_path_join(self.base_url, self.proxy_base)
        for name, value in list(response.headers.get_all()):
            if secret in value:
                response.headers[name] = value.replace(served, public).replace(secret, _MASK)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not response.body or (kind and kind not in _SCANNED and not kind.endswith("+json")):
            return
        zipped = response.headers.get("Content-Encoding", "") == "gzip"
        try:
            body = gzip.decompress(response.body) if zipped else response.body
        except (OSError, EOFError, zlib.error):
            return  # not what it says: nothing TensorBoard wrote about itself
        if secret.encode() in body:
            body = body.replace(served.encode(), public.encode())
            body = body.replace(secret.encode(), _MASK.encode())
            response.body = gzip.compress(body) if zipped else body

    async def http_get(self, path: str = "") -> None:
        await self._forward(path)

    async def open(self, path: str = "") -> None:
        raise web.HTTPError(400, "TensorBoard is not served over websockets")

    async def post(self, path: str = "") -> None:
        if self._tensorboard.status != "ready":
            # The "Retry" button of the failure page.
            if not await self._allowed("execute"):
                raise web.HTTPError(403, f"not authorized to start TensorBoard ({AUTH_RESOURCE})")
            self._start_tensorboard()
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
        tensorboard = self._tensorboard
        if tensorboard.status != "ready" or tensorboard.port is None:
            await self._not_ready()
            return
        self._served = tensorboard.served_prefix
        if self.request.headers.get("Accept") == "text/event-stream":
            # jupyter-server-proxy streams such responses without rewriting them, and
            # TensorBoard sends no event streams: ask for a plain response.
            self.request.headers["Accept"] = "*/*"
        # "" would lose the root page's trailing slash in the proxy's path join.
        await self.proxy("127.0.0.1", tensorboard.port, path or "/")

    async def _not_ready(self) -> None:
        tensorboard = self._tensorboard
        status = 503
        if tensorboard.status == "failed":
            tail = "\n".join(tensorboard.state().get("stderr_tail", [])[-15:])
            body = _FAILED_PAGE.format(
                reason=html.escape(tensorboard.reason or "it stopped"),
                tail=html.escape(tail),
                xsrf=self.xsrf_form_html(),
            )
        elif tensorboard.status == "starting":
            body = _STARTING_PAGE
        elif await self._allowed("execute"):
            self._start_tensorboard()
            body = _STARTING_PAGE
        else:
            status, body = 403, _NOT_ALLOWED_PAGE
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def _relative_fonts(response: RewritableResponse) -> None:
    """TensorBoard's page names its fonts at the server root (``url(/font-roboto/…)``),
    where the Jupyter server has nothing (a 404 per font and a fallback font): they are
    made relative to the page, so they come from TensorBoard through this proxy too."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind != "text/html" or not response.body:
        return
    zipped = response.headers.get("Content-Encoding", "") == "gzip"
    try:
        body = gzip.decompress(response.body) if zipped else response.body
    except (OSError, EOFError, zlib.error):
        return
    if _ROOT_FONTS in body:
        body = body.replace(_ROOT_FONTS, _PAGE_FONTS)
        response.body = gzip.compress(body) if zipped else body


class _AddSlashHandler(JupyterHandler):
    """``…/tensorboard`` → ``…/tensorboard/``: TensorBoard's asset URLs are relative."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized("read")
    def get(self) -> None:
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(self.request.path + "/" + query, permanent=False)


def _origin_of(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def proxy_handlers(prefix: str) -> list[tuple[Any, ...]]:
    """URL patterns (relative to the server's base_url) and their handlers. The
    extension app adds ``name`` to the proxy handler's arguments
    (``ExtensionHandlerMixin``)."""
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

_NOT_ALLOWED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TensorBoard is not running</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}</style></head>
<body><h3>TensorBoard is not running</h3>
<p>You are not allowed to start it. Ask someone who may to open it.</p></body></html>
"""

_FAILED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TensorBoard failed</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}pre{{background:#f4f4f4;
padding:1em;overflow:auto}}</style></head>
<body><h3>TensorBoard is not running</h3><p>{reason}</p><pre>{tail}</pre>
<form method="post">{xsrf}<button type="submit">Retry</button></form></body></html>
"""
