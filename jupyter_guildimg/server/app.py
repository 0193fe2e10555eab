"""The Jupyter server extension: one monitor thread and one TensorBoard process per
server, shared by every notebook and the JupyterLab sidebar.

All settings live here, as traitlets (``c.GuildImgApp.<name>`` in a
``jupyter_server_config.py``).

TensorBoard reads a view of the log dir (:mod:`jupyter_guildimg.engine.view`): a
temporary directory of the server's own, next to the temporary log dirs, holding a
symlink to each run it shows (``tensorboard_max_runs``, changed live through ``PUT
selection``); it is removed when the server stops, like a temporary log dir.

Kernels find the API through the environment they inherit: ``JUPYTER_GUILDIMG_URL``,
``JUPYTER_GUILDIMG_SERVER_PID`` and ``JUPYTER_GUILDIMG_SERVER_INFO`` (the path of the
server's runtime file, 0600, where Jupyter clients read its token). The token itself is
never exported: kernels, terminals and TensorBoard would all inherit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from .. import rest
from ..engine import processes
from ..engine.catalog import Catalog
from ..engine.fswatch import RunsWatcher
from ..engine.layout import LogDirLockedError, SourceError, logdir_in_use, logdir_overlap
from ..engine.monitor import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_IMAGE_BYTES,
    MIN_INTERVAL,
    PassReport,
    RunsMonitor,
)
from ..engine.objectstore import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_OBJECT_POLL_INTERVAL,
    ObjectStoreOptions,
    ObjectStoreSource,
    is_object_url,
)
from ..engine.runs import RunSource, combine_sources, default_sources, open_source, parse_source
from ..engine.tbprocess import TensorBoardProcess
from ..engine.view import DEFAULT_LIMIT, TensorBoardView, temp_view_dir
from .proxy import proxy_handlers

__all__ = [
    "ChangeFeed",
    "GuildImgApp",
    "SourceError",
    "logdir_overlap",
]

log = logging.getLogger(__name__)

_MONITOR_STOP_WAIT = 3.0  # a pass in progress may go on: the process is ending


def _local_path(source: RunSource) -> str:
    """Where a source's runs are on this machine: an object-store source's copies."""
    return source.cache_root if isinstance(source, ObjectStoreSource) else source.path


class ChangeFeed:
    """Long polls on the monitor's change counter, :attr:`RunsMonitor.generation` (the
    only one: this feed keeps none of its own). ``publish``, a pass listener, runs in
    the monitor's thread after the counter went up; ``wait`` runs on the server's
    event loop."""

    def __init__(self, monitor: RunsMonitor) -> None:
        self.monitor = monitor
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        monitor.add_listener(self.publish)
        monitor.add_change_listener(self.announce)

    @property
    def generation(self) -> int:
        return self.monitor.generation

    def publish(self, report: PassReport) -> None:
        """Wake the waiters after a pass that changed something."""
        if report.changed:
            self.announce()

    def announce(self) -> None:
        """Wake the waiters: the generation went up (thread-safe)."""
        with self._lock:
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, since: int, timeout: float) -> int:
        """The generation, once it is past ``since`` or ``timeout`` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                self._loop = loop
                # The monitor counts up before it calls publish, which takes this
                # lock: a change after this check finds the event made below.
                if self.generation > since:
                    return self.generation
                if self._event is None:
                    self._event = asyncio.Event()
                event = self._event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self.generation
            # A wake queued by an earlier change can set a new event before the
            # counter moves again: check the counter once more, until the deadline.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


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
        safety net for events a file system did not deliver.""",
    ).tag(config=True)

    max_poll_share = Float(
        0.1,
        min=0.01,
        max=1.0,
        help="""Most of a core that polling may take: after a polling pass of t seconds
        the next waits max(interval, t / max_poll_share) seconds (status carries
        poll_interval). From 0.01 to 1.""",
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

    def _object_options(self) -> ObjectStoreOptions:
        """The object-store sources' settings, from the traitlets above."""
        return ObjectStoreOptions(
            endpoint_url=self.s3_endpoint_url,
            cache_dir=self.object_cache_dir,
            cache_bytes=self.object_cache_bytes,
            poll_interval=self.object_poll_interval,
            max_object_bytes=self.max_image_bytes,
        )

    @default("sources")
    def _default_sources(self) -> list[str]:
        # Read once, in initialize_settings, when the server is linked: its root dir.
        root = self.serverapp.root_dir if self.serverapp is not None else None
        found = default_sources(root)
        # The server's own logger: its log shows it (this module's logger is quiet there).
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
        root = self._server.root_dir
        self._own_logdir = not self.logdir
        # Log dirs and view dirs that dead servers and kernels left behind.
        processes.clean_stale_dirs(processes.TEMP_LOGDIR_PREFIXES, logdir_in_use)
        if self._own_logdir:
            self.logdir_path = processes.temp_logdir(processes.SERVER_LOGDIR_PREFIX)
        else:
            self.logdir_path = os.path.abspath(os.path.join(root, self.logdir))
        self.refused_sources: list[dict[str, str]] = []
        self.run_sources: list[RunSource] = []
        for text in self.sources:
            kind, path = parse_source(text, root)
            if kind is None and not is_object_url(path) and not os.path.isdir(path):
                log.warning("Run source %r does not exist (yet); watching for it", path)
            try:
                source = open_source(
                    text, root, missing_ok=True, object_options=self._object_options()
                )
            except SourceError as e:  # an object store whose package is not installed
                log.error("jupyter_guildimg: not watching a source: %s", e)
                self.refused_sources.append({"path": path, "message": str(e)})
                continue
            problem = logdir_overlap(_local_path(source), self.logdir_path)
            if problem:
                log.error("jupyter_guildimg: not watching a source: %s", problem)
                self.refused_sources.append({"path": source.path, "message": problem})
            else:
                self.run_sources.append(source)
        self._list_runs = combine_sources(self.run_sources)
        # The watcher calls the monitor, which takes the watcher: made first, it reaches
        # the monitor once there is one.
        self.watcher: RunsWatcher | None = None
        if self.watch_files:
            self.watcher = RunsWatcher(self._files_changed, force_polling=self.force_polling)
        self.monitor = RunsMonitor(
            self.logdir_path,
            self._list_runs,
            watcher=self.watcher,
            reconcile_interval=self.reconcile_interval,
            max_poll_share=self.max_poll_share,
            interval=self.interval,
            log_images=self.log_images,
            log_hparams=self.log_hparams,
            max_images_per_run=self.max_images_per_run or None,
            max_revisions_per_image=self.max_revisions_per_image or None,
            max_image_bytes=self.max_image_bytes or None,
            revision_steps=True,  # every revision on TensorBoard's step slider, dated
        )
        # The view follows each pass before the change feed wakes clients, so what they
        # read then (in_tensorboard) is already the pass's.
        self.view_dir = temp_view_dir(processes.SERVER_LOGDIR_PREFIX, self.logdir_path)
        self.view = TensorBoardView(
            self.view_dir, self.logdir_path, limit=self.tensorboard_max_runs
        )
        self.view.attach(self.monitor)
        self.changes = ChangeFeed(self.monitor)
        self.catalog = Catalog(self.monitor, shown=self.view.shown)
        runtime_dir = self._server.runtime_dir
        killed = TensorBoardProcess.cleanup_orphans(runtime_dir)
        if killed:
            log.warning("Stopped %d TensorBoard process(es) left by a dead server", len(killed))
        # Only the proxy knows where TensorBoard serves (a secret path per start).
        # TensorBoard reads the view, and its pid record names the view dir, which is
        # what orphan clean-up looks for on its command line.
        self.tensorboard = TensorBoardProcess(
            self.view_dir,
            extra_args=self.tensorboard_args,
            samples_per_image=self.image_history,
            ready_timeout=self.tensorboard_ready_timeout,
            runtime_dir=runtime_dir,
            secret_prefix=True,
            files_needed=self.view.files_needed,
        )
        self._export_connection()
        self.monitor_error = ""
        try:
            self.monitor.acquire_logdir()
        except LogDirLockedError as e:
            # The server still serves what it can; status says why nothing is captured.
            self.monitor_error = str(e)
            log.error("jupyter_guildimg: capture is off: %s", e)
            return
        self.monitor.add_listener(self._log_watching)
        self.monitor.start()
        self.log.info(
            "jupyter_guildimg: watching %s into %r", ", ".join(self.source_paths), self.logdir_path
        )

    def _log_watching(self, report: PassReport) -> None:
        """Say once, after the first pass, how each source is followed."""
        watch = self.monitor.status()["watch"]
        if getattr(self, "_said_watching", False) or watch is None:
            return
        self._said_watching = True
        for source in watch["sources"]:
            how = "file-system events" if source["mode"] == "events" else "polling"
            reason = f" ({source['reason']})" if source["reason"] else ""
            self.log.info("jupyter_guildimg: %r followed by %s%s", source["path"], how, reason)

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

    def _files_changed(self, paths: set[str]) -> None:
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.notify_changed(paths)

    @property
    def source_paths(self) -> list[str]:
        return [source.path for source in self.run_sources]

    def add_source(self, text: str) -> RunSource:
        """Watch one more source (``guild:``/``dir:`` prefixes allowed; relative to the
        root directory). Raises FileNotFoundError for a path that is not a directory and
        :class:`SourceError` for one that contains the log dir or lies inside it."""
        root = self._server.root_dir
        _kind, path = parse_source(text, root)
        if not is_object_url(path) and not os.path.isdir(path):
            raise FileNotFoundError(f"run source {path!r} is not a directory")
        if path in self.source_paths:
            return next(s for s in self.run_sources if s.path == path)
        source = open_source(text, root, object_options=self._object_options())
        problem = logdir_overlap(_local_path(source), self.logdir_path)
        if problem:
            raise SourceError(problem)
        if source.path not in self.source_paths:
            self.run_sources = [*self.run_sources, source]
            self._list_runs.sources = self.run_sources
        return source

    def remove_source(self, text: str) -> RunSource:
        """Stop watching a source, named as :attr:`source_paths` lists it or as it was
        added. Its runs are removed from the log dir at the next pass (the others stay).
        Raises LookupError when it is not watched."""
        _kind, full = parse_source(text, self._server.root_dir)
        for source in self.run_sources:
            if source.path == full:
                self.run_sources = [s for s in self.run_sources if s is not source]
                self._list_runs.sources = self.run_sources
                if isinstance(source, ObjectStoreSource):
                    source.close()  # its listings stop; its cache stays for a return
                return source
        raise LookupError(f"run source {full!r} is not watched")

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

    def start_tensorboard_soon(self) -> None:
        """Start TensorBoard in the background unless it is running or starting."""
        if self.tensorboard.status in ("stopped", "failed"):
            task = asyncio.ensure_future(self.tensorboard.start())
            self._tensorboard_start = task  # keep a reference: tasks are weakly held

    async def stop_extension(self) -> None:
        """Stop TensorBoard and the monitor; the view dir and a temporary log dir are
        renamed away at once and deleted in the background, so a large one does not
        hold up the shutdown."""
        for name, value in getattr(self, "_exported", {}).items():
            if os.environ.get(name) == value:
                del os.environ[name]
        await self.tensorboard.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.monitor.close, _MONITOR_STOP_WAIT)
        for source in self.run_sources:
            if isinstance(source, ObjectStoreSource):
                source.close()
        if self.watcher is not None:
            self.watcher.close()
        self.view.close()
        self.catalog.close()
        if self.monitor.running:
            log.warning("jupyter_guildimg: the monitor's pass did not end in time; leaving it")
        processes.remove_tree_soon(self.view_dir)  # the links only: never followed
        if self._own_logdir:
            processes.remove_tree_soon(self.logdir_path)

    def status(self) -> dict[str, Any]:
        """``monitor``: the monitor's status with ``sources`` (watched),
        ``refused_sources`` (configured but not watched: ``path`` and ``message``) and
        ``error`` (why capture is off, else None); ``tensorboard``: its state."""
        return {
            "monitor": {
                "sources": self.source_paths,
                **self.monitor.status(),
                "refused_sources": list(self.refused_sources),
                "error": self.monitor_error or None,
            },
            "tensorboard": self.tensorboard.state(),
        }
