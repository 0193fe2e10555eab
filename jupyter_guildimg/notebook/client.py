"""How a kernel reaches the monitor: a :class:`ServerBackend` talking to the server
extension's REST API, or, when no server extension is reachable, a
:class:`LocalBackend` running its own monitor and TensorBoard inside the kernel.

Both answer the same methods (:class:`Backend`) with the REST API's bodies
(:mod:`jupyter_guildimg.rest`), so the panel and the magic never care which one they
have.
:func:`connect` picks one; :func:`shared_backend` keeps one per kernel.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx

from .. import rest
from ..engine.runs import parse_source
from ..rest import ENV_SERVER_INFO, ENV_SERVER_PID, ENV_TOKEN, ENV_URL
from .backend import START_TIMEOUT, Backend, BackendError, check_source
from .local import LocalBackend

__all__ = [
    "ENV_SERVER_INFO",
    "ENV_SERVER_PID",
    "ENV_TOKEN",
    "ENV_URL",
    "Backend",
    "BackendError",
    "LocalBackend",
    "ServerBackend",
    "close_shared_backend",
    "connect",
    "shared_backend",
]

log = logging.getLogger(__name__)

_PROBE_TIMEOUT = 2.0


# ---------------------------------------------------------------------------
# The server extension


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerBackend(Backend):
    """The REST API of the server extension at ``url`` (the server's URL including
    its base_url), authenticated with ``token``. Thread-safe."""

    def __init__(self, url: str, token: str = "", *, timeout: float = 30.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.description = f"server extension at {self.url}"
        self._headers = {"Authorization": f"token {token}"} if token else {}
        host = urllib.parse.urlsplit(self.url).hostname or ""
        self._client = httpx.Client(
            base_url=self.url + rest.API_PREFIX + "/",
            headers=self._headers,
            timeout=timeout,
            # A proxy from the environment must not come between a kernel and its own
            # server on this machine.
            trust_env=not _is_loopback(host),
        )

    def __repr__(self) -> str:
        return f"ServerBackend({self.url!r})"

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request to this server (for example to
        TensorBoard's data API through the proxy, at :meth:`tensorboard_src`)."""
        return dict(self._headers)

    def _request(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, route, **kwargs)
        except httpx.HTTPError as e:
            raise BackendError(f"cannot reach {self.url}: {e}") from e
        if response.is_error:
            try:
                message = cast(rest.Error, response.json())["message"]
            except (ValueError, KeyError, TypeError):
                message = response.reason_phrase
            raise BackendError(f"{message} (HTTP {response.status_code})", response.status_code)
        return response

    def _json(self, method: str, route: str, **kwargs: Any) -> Any:
        # The server answers the contract's bodies: tests/server/test_contract.py
        # checks its real answers, so they are not checked again here.
        return self._request(method, route, **kwargs).json()

    def probe(self) -> bool:
        """Whether the extension answers ``GET status`` with 200 here."""
        try:
            self._request("GET", rest.STATUS, timeout=_PROBE_TIMEOUT)
        except BackendError as e:
            log.debug("No guildimg server extension at %s: %s", self.url, e)
            return False
        return True

    def status(self) -> rest.Status:
        return cast(rest.Status, self._json("GET", rest.STATUS))

    def runs(self, image: str | None = None, q: str | None = None) -> list[rest.Run]:
        params = {k: v for k, v in ((rest.PARAM_IMAGE, image), (rest.PARAM_Q, q)) if v is not None}
        return cast(rest.RunsList, self._json("GET", rest.RUNS, params=params))["runs"]

    def run(self, key: str) -> rest.Run:
        return cast(rest.Run, self._json("GET", rest.run_url(key)))

    def images(self, run_id: str) -> rest.RunImages:
        return cast(rest.RunImages, self._json("GET", rest.run_images_url(run_id)))

    def image(
        self, run_id: str, path: str, rev: int | None = None, thumb: int | None = None
    ) -> bytes:
        pairs = ((rest.PARAM_REV, rev), (rest.PARAM_THUMB, thumb))
        params = {k: v for k, v in pairs if v is not None}
        return self._request("GET", rest.run_image_url(run_id, path), params=params).content

    def refresh(self) -> rest.RefreshReport:
        return cast(rest.RefreshReport, self._json("POST", rest.REFRESH))

    def start_tensorboard(self) -> rest.TensorBoardState:
        """``POST tensorboard``: the server starts TensorBoard unless it is ready or
        starting, and answers once it is ready or failed."""
        state = self._json("POST", rest.TENSORBOARD, timeout=START_TIMEOUT)
        return cast(rest.TensorBoardState, state)

    def restart_tensorboard(self) -> rest.TensorBoardState:
        """``POST tensorboard`` with ``{"restart": true}``."""
        body = {rest.PARAM_RESTART: True}
        state = self._json("POST", rest.TENSORBOARD, json=body, timeout=START_TIMEOUT)
        return cast(rest.TensorBoardState, state)

    def stop_tensorboard(self) -> rest.TensorBoardState:
        state = self._json("DELETE", rest.TENSORBOARD, timeout=START_TIMEOUT)
        return cast(rest.TensorBoardState, state)

    def selection(self) -> rest.Selection:
        return cast(rest.Selection, self._json("GET", rest.SELECTION))

    def set_selection(
        self,
        mode: rest.SelectionMode,
        runs: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> rest.Selection:
        """``PUT selection``; the server resolves the run keys (400 for one that names
        no run or several)."""
        body: rest.SelectionChange = {"mode": mode}
        if runs is not None:
            body["runs"] = list(runs)
        if filter is not None:
            body["filter"] = filter
        return cast(rest.Selection, self._json("PUT", rest.SELECTION, json=body))

    def wait_changes(self, since: int, timeout: float = 25) -> int:
        params = {rest.PARAM_SINCE: since, rest.PARAM_TIMEOUT: timeout}
        body = cast(
            rest.Changes, self._json("GET", rest.CHANGES, params=params, timeout=timeout + 15)
        )
        return int(body["generation"])

    def sources(self) -> rest.Sources:
        return cast(rest.Sources, self._json("GET", rest.SOURCES))

    def add_source(self, path: str) -> rest.Sources:
        body = {rest.PARAM_PATH: path}
        return cast(rest.Sources, self._json("POST", rest.SOURCES, json=body))

    def remove_source(self, path: str) -> rest.Sources:
        params = {rest.PARAM_PATH: path}
        return cast(rest.Sources, self._json("DELETE", rest.SOURCES, params=params))

    def tensorboard_src(self) -> str:
        """The proxy's URL without scheme and host (base_url path + ``guildimg/tensorboard/``),
        so the iframe goes to whichever host the browser shows the notebook from, behind
        JupyterHub or a remote server alike."""
        return urllib.parse.urlsplit(self.url).path + rest.TENSORBOARD_PREFIX + "/"

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------
# Finding a backend


def _token_of_parent_server() -> str:
    """The token of the server named by the environment the extension exports: read from
    its runtime file (``$JUPYTER_GUILDIMG_SERVER_INFO``, else ``jpserver-<pid>.json`` in
    Jupyter's runtime dir), which only this user can read, as Jupyter's own clients do.
    "" when there is none, or it is another server's (its pid differs)."""
    pid = os.environ.get(ENV_SERVER_PID, "")
    path = os.environ.get(ENV_SERVER_INFO, "")
    if not path and pid:
        from jupyter_core.paths import jupyter_runtime_dir

        path = os.path.join(jupyter_runtime_dir(), f"jpserver-{pid}.json")
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        if pid and str(info["pid"]) != pid:
            log.debug("%r is not the runtime file of server pid %s", path, pid)
            return ""
        return str(info.get("token") or "")
    except (OSError, ValueError, KeyError, TypeError):
        log.debug("No token in the server's runtime file %r", path, exc_info=True)
        return ""


def _own_servers() -> set[int]:
    """Pids of the processes that may be the Jupyter server of this kernel: the one
    that launched it (``$JPY_PARENT_PID``, which jupyter_client sets in every kernel it
    starts on POSIX; on Windows it is a handle, not a pid), its parent process, and this
    process itself (code running inside the server)."""
    pids = {os.getpid(), os.getppid()}
    launcher = os.environ.get("JPY_PARENT_PID", "")
    if os.name == "posix" and launcher.isdigit():
        pids.add(int(launcher))
    return pids


@dataclass(frozen=True)
class _Candidate:
    """A server that may run the extension; ``ours`` when it started this kernel."""

    url: str
    token: str
    ours: bool


def _candidates() -> Iterator[_Candidate]:
    """Servers that may run the extension. First the one named by the environment the
    extension exports (its token from ``$JUPYTER_GUILDIMG_TOKEN`` if a user set it,
    else from its runtime file): ours if its pid (``$JUPYTER_GUILDIMG_SERVER_PID``) is
    the kernel's launcher, or if the URL was set by hand (no pid). The environment is
    inherited by everything a server starts (a terminal, and a kernel nbclient starts
    from it), so a pid that is not the launcher's is someone else's server. Then every
    running server, ours if its pid is the launcher's, those whose root dir holds the
    current directory first."""
    url = os.environ.get(ENV_URL)
    if url:
        pid = os.environ.get(ENV_SERVER_PID, "")
        ours = not pid or (pid.isdigit() and int(pid) in _own_servers())
        yield _Candidate(url, os.environ.get(ENV_TOKEN) or _token_of_parent_server(), ours)
    from jupyter_server.serverapp import list_running_servers

    try:
        servers = list(list_running_servers())
    except OSError:
        log.warning("Cannot list running Jupyter servers", exc_info=True)
        return
    cwd = os.getcwd()

    def holds_cwd(info: dict[str, Any]) -> bool:
        root = os.path.abspath(info.get("root_dir") or info.get("notebook_dir") or "/")
        return os.path.commonpath([root, cwd]) == root

    own = _own_servers()
    for info in sorted(servers, key=lambda info: not holds_cwd(info)):
        if info.get("url"):
            yield _Candidate(info["url"], info.get("token", ""), info.get("pid") in own)


def _watches(backend: ServerBackend, paths: Sequence[str]) -> bool:
    """Whether the server already watches every one of ``paths`` (and there is one):
    the proof that a server which did not start this kernel sees what it uses."""
    if not paths:
        return False
    try:
        watched = set(backend.status()["monitor"]["sources"])
    except BackendError:
        log.debug("Cannot read the sources of %s", backend.url, exc_info=True)
        return False
    return all(parse_source(path)[1] in watched for path in paths)


def connect(sources: Sequence[str] = ()) -> Backend:
    """The backend for this kernel: the server extension of the Jupyter server that
    started it (named by ``$JUPYTER_GUILDIMG_URL``, its token read from its runtime
    file, or found in Jupyter's running-server list by its pid), else a running server
    whose extension already watches every one of ``sources`` (none: no such server),
    else a :class:`LocalBackend` watching ``sources`` (or its defaults). A kernel that no
    Jupyter server started (nbclient, VS Code, a terminal) so never uses an unrelated
    server's monitor, which watches other runs. The server that started the kernel is
    asked to watch ``sources`` too. Raises FileNotFoundError (one line, naming the path)
    for a source that does not exist, before connecting."""
    paths = [check_source(path) for path in sources]
    for candidate in _candidates():
        backend = ServerBackend(candidate.url, candidate.token)
        if not backend.probe():
            backend.close()
            continue
        if not candidate.ours and not _watches(backend, paths):
            log.info(
                "jupyter_guildimg: not using the %s: it did not start this kernel",
                backend.description,
            )
            backend.close()
            continue
        try:
            for path in paths:
                backend.add_source(path)
        except BackendError:
            backend.close()
            raise
        log.info("jupyter_guildimg: using the %s", backend.description)
        return backend
    log.info("jupyter_guildimg: no server extension of this kernel's; monitoring in the kernel")
    return LocalBackend(paths)


_shared: Backend | None = None
_shared_lock = threading.Lock()


def shared_backend(sources: Sequence[str] = ()) -> Backend:
    """One backend per kernel for the magic and :func:`jupyter_guildimg.panel`, made by
    :func:`connect` on first use; later ``sources`` are added to it."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = connect(sources)
        else:
            for path in [check_source(path) for path in sources]:
                _shared.add_source(path)
        return _shared


def close_shared_backend() -> None:
    """Close the shared backend (the next :func:`shared_backend` connects again)."""
    global _shared
    with _shared_lock:
        backend, _shared = _shared, None
    if backend is not None:
        backend.close()
