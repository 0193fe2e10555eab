"""The Jupyter server extension: one monitor (in a process of its own) and one
TensorBoard process per server, shared by every notebook and the JupyterLab sidebar.

All settings live here, as traitlets (``c.GuildImgApp.<name>`` in a
``jupyter_server_config.py``). What they make and run (the sources, the monitor, the
change feed, the catalog, TensorBoard and its view) is the app's
:class:`~jupyter_guildimg.server.runtime.Runtime`, made when the server links the
extension and stopped with it.

Kernels find the API through the environment they inherit: ``JUPYTER_GUILDIMG_URL``,
``JUPYTER_GUILDIMG_SERVER_PID`` and ``JUPYTER_GUILDIMG_SERVER_INFO`` (the path of the
server's runtime file, 0600, where Jupyter clients read its token). The token itself is
never exported: kernels, terminals and TensorBoard would all inherit it.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from .. import rest
from ..engine.layout import SourceError, logdir_overlap
from ..engine.monitor import DEFAULT_INTERVAL, DEFAULT_MAX_IMAGE_BYTES, MIN_INTERVAL
from ..engine.objectstore import DEFAULT_CACHE_BYTES, DEFAULT_OBJECT_POLL_INTERVAL
from ..engine.runs import default_sources
from ..engine.selection import DEFAULT_LIMIT
from ..engine.tbprocess import TensorBoardProcess
from .changefeed import ChangeFeed
from .proxy import proxy_handlers
from .runtime import Runtime

__all__ = [
    "ChangeFeed",
    "GuildImgApp",
    "SourceError",
    "logdir_overlap",
]


class GuildImgApp(ExtensionApp):
    """Images of ML runs in TensorBoard and in Jupyter."""

    name = "jupyter_guildimg"
    load_other_extensions = True

    sources = List(
        Unicode(),
        help="""Run sources to watch: Guild homes and folders of runs ('guild:PATH' or
        'dir:PATH' to say which; otherwise it is guessed). Relative paths resolve
        against the server's root directory. Default: every conventional source that
        exists: the Guild home ($GUILD_HOME or ~/.guild) and 'runs', 'lightning_logs',
        'outputs' and 'multirun' under the root directory; if none does, 'runs' under
        the root directory, watched until it appears.""",
    ).tag(config=True)

    logdir = Unicode(
        "",
        help="""Where the monitor writes its mirror and summaries (TensorBoard's --logdir).
        Empty: a temporary directory, removed when the server stops (in the background),
        or at the next server's start if this one died. A directory given here is kept.""",
    ).tag(config=True)

    interval = Float(
        DEFAULT_INTERVAL, help=f"Seconds between monitor passes (at least {MIN_INTERVAL})."
    ).tag(config=True)

    watch_files = Bool(
        True,
        help="""Follow file-system events (inotify, through watchfiles) to capture what a
        run writes at once, with a full reconciling pass every reconcile_interval seconds.
        Sources on network or FUSE mounts, or past the system's watch limit, are polled
        every interval seconds instead (status says which and why). False: poll every
        source every interval seconds.""",
    ).tag(config=True)

    force_polling = Bool(
        False, help="Poll every source every interval seconds, even where events work."
    ).tag(config=True)

    reconcile_interval = Float(
        60.0,
        help="""Seconds between full passes when file-system events are followed: the
        safety net for events a file system did not deliver (and how finished runs
        that went quiet, not watched, are looked at). Longer on large homes: see
        max_reconcile_share.""",
    ).tag(config=True)

    max_reconcile_share = Float(
        0.01,
        min=0.001,
        max=1.0,
        help="""Most of a core that reconciling passes may take while events are
        followed: after a full pass of t seconds the next waits
        max(reconcile_interval, t / max_reconcile_share) seconds (status carries the
        interval as watch.reconcile_interval). From 0.001 to 1.""",
    ).tag(config=True)

    max_poll_share = Float(
        0.1,
        min=0.01,
        max=1.0,
        help="""Most of a core that polling may take: after a polling pass of t seconds
        the next waits max(interval, t / max_poll_share) seconds (status carries
        poll_interval). From 0.01 to 1.""",
    ).tag(config=True)

    monitor_process = Bool(
        True,
        help="""Run the monitor (sources, watcher, index, catalog) in a process of its
        own, which the server starts, restarts if it ends, and stops: its work never
        slows Jupyter's own requests. False, or if that process cannot start: in the
        server's own threads.""",
    ).tag(config=True)

    index_process = Bool(
        True,
        help="""Make the log dirs of many new runs (the first index of a large home) in
        child processes (one for each 1,000 runs, at most 2 and no more than the CPUs),
        at the lowest priority, so Jupyter's own requests stay quick while it runs;
        and list a Guild home with 1,000 runs or more not read yet in a child too.
        False, or if no child can start: in the server's own threads.""",
    ).tag(config=True)

    log_images = Bool(True, help="Write image summaries for run images.").tag(config=True)

    log_hparams = Bool(True, help="Write HParams sessions from Guild run flags.").tag(config=True)

    max_images_per_run = Int(
        100,
        help="""At most this many distinct images are summarized per run (0: no cap).
        Updates of images already summarized always go through.""",
    ).tag(config=True)

    tensorboard_args = List(
        Unicode(),
        help="Extra arguments for TensorBoard (not --host or --bind_all: it stays on 127.0.0.1).",
    ).tag(config=True)

    tensorboard_autostart = Bool(
        False, help="Start TensorBoard with the server rather than on first use."
    ).tag(config=True)

    tensorboard_ready_timeout = Float(
        120.0, help="Seconds TensorBoard may take to answer before it counts as failed."
    ).tag(config=True)

    image_history = Int(
        100, help="Revisions per image TensorBoard keeps (--samples_per_plugin images=N)."
    ).tag(config=True)

    max_revisions_per_image = Int(
        100,
        help="""At most this many revisions of an image are kept in the log dir: beyond
        it the oldest revision files the monitor wrote are removed (0: no cap).""",
    ).tag(config=True)

    max_image_bytes = Int(
        DEFAULT_MAX_IMAGE_BYTES,
        help="""An image file larger than this many bytes is reported and not summarized,
        without being read (0: no limit).""",
    ).tag(config=True)

    tensorboard_max_runs = Int(
        DEFAULT_LIMIT,
        help="""TensorBoard shows every run while there are at most this many, else this
        many newest runs plus every running run (0: every run, however many). Clients
        choose other runs live (PUT selection); the catalog always lists every run.""",
    ).tag(config=True)

    s3_endpoint_url = Unicode(
        "",
        help="""Endpoint of an S3-compatible store (MinIO, SeaweedFS, Ceph, R2) for
        's3://' sources; "" = $AWS_ENDPOINT_URL, else AWS. Credentials and region come
        from the standard AWS places (environment, config files, profiles, roles).""",
    ).tag(config=True)

    object_cache_dir = Unicode(
        "",
        help="""Where object-store sources keep their local copies (images, event files,
        run metadata), one folder per source; "" = ~/.cache/jupyter_guildimg/objects.""",
    ).tag(config=True)

    object_cache_bytes = Int(
        DEFAULT_CACHE_BYTES,
        help="""Bytes an object-store source's copies may take; past it, new objects are
        not fetched and that is reported per run (0: no limit).""",
    ).tag(config=True)

    object_poll_interval = Float(
        DEFAULT_OBJECT_POLL_INTERVAL,
        help="""Seconds between listings of an object-store source at least (object
        stores send no events); longer when a listing is costly, and backing off
        after a failed one.""",
    ).tag(config=True)

    @default("sources")
    def _default_sources(self) -> list[str]:
        # Read once, in initialize_settings, when the server is linked: its root dir.
        root = self.serverapp.root_dir if self.serverapp is not None else None
        found = default_sources(root)
        # The server's own logger: its log shows it (module loggers are quiet there).
        self.log.info(
            "jupyter_guildimg: no sources configured (GuildImgApp.sources); watching the"
            " conventional ones: %s",
            ", ".join(found),
        )
        return found

    @validate("interval")
    def _check_interval(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < MIN_INTERVAL:
            raise TraitError(f"GuildImgApp.interval must be at least {MIN_INTERVAL} s")
        return float(proposal["value"])

    @validate("tensorboard_max_runs")
    def _check_max_runs(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 0:
            raise TraitError("GuildImgApp.tensorboard_max_runs must be >= 0 (0: every run)")
        return int(proposal["value"])

    # -- lifecycle --------------------------------------------------------

    def initialize_settings(self) -> None:
        """Make the runtime from the settings, tell kernels where the API is, and start
        the monitor (TensorBoard starts on first use, or at start with autostart)."""
        server = self._server
        self.runtime = Runtime(self, server.root_dir, server.runtime_dir)
        self._export_connection()
        self.runtime.start()

    def initialize_handlers(self) -> None:
        from .handlers import api_handlers  # imports this module

        self.handlers.extend(api_handlers(rest.API_PREFIX))
        self.handlers.extend(proxy_handlers(rest.TENSORBOARD_PREFIX))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.tensorboard_autostart:
            self.start_tensorboard_soon()

    @property
    def _server(self) -> ServerApp:
        """The server this extension is linked to (always, once it is initialized)."""
        if self.serverapp is None:
            raise RuntimeError("jupyter_guildimg is not linked to a Jupyter server")
        return self.serverapp

    def _export_connection(self) -> None:
        """Kernels inherit the server's environment: tell them where the API is and
        where this server's runtime file is (they read the token there, as Jupyter's
        clients do), so ``%guildimg`` needs no configuration."""
        app = self._server
        if app.sock:
            return  # a Unix socket: kernels fall back to the running-server list
        host = app.ip if app.ip not in ("", "0.0.0.0", "::", "localhost") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if app.certfile else "http"
        self._exported = {
            rest.ENV_URL: f"{scheme}://{host}:{app.port}{app.base_url}",
            rest.ENV_SERVER_PID: str(os.getpid()),
            rest.ENV_SERVER_INFO: app.info_file,
        }
        os.environ.update(self._exported)

    async def stop_extension(self) -> None:
        """Take back what :meth:`_export_connection` exported and stop the runtime
        (:meth:`Runtime.stop <jupyter_guildimg.server.runtime.Runtime.stop>`)."""
        for name, value in getattr(self, "_exported", {}).items():
            if os.environ.get(name) == value:
                del os.environ[name]
        await self.runtime.stop()

    # -- the runtime's parts, where the handlers and the proxy find them ---

    @property
    def changes(self) -> ChangeFeed:
        return self.runtime.changes

    @property
    def tensorboard(self) -> TensorBoardProcess:
        return self.runtime.tensorboard

    @property
    def logdir_path(self) -> str:
        return self.runtime.logdir_path

    @property
    def view_dir(self) -> str:
        return self.runtime.view_dir

    async def call(self, name: str, *args: Any) -> Any:
        """The monitor's ``name(*args)``
        (:class:`~jupyter_guildimg.engine.service.MonitorService`), wherever it runs."""
        return await self.runtime.monitor.call(name, *args)

    def start_tensorboard_soon(self) -> None:
        self.runtime.start_tensorboard_soon()

    async def status(self) -> rest.Status:
        return await self.runtime.status()
