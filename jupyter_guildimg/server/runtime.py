"""What the extension runs while the server does, made from the app's settings and
owned by the app (:attr:`GuildImgApp.runtime <jupyter_guildimg.server.app.GuildImgApp>`):
the run sources (added and removed live), the monitor and its file watcher, the
change feed, the catalog, TensorBoard's view and the TensorBoard process, and the
status that reports on them.

TensorBoard reads a view of the log dir (:mod:`jupyter_guildimg.engine.view`): a
temporary directory of the server's own, next to the temporary log dirs, holding a
symlink to each run it shows (``tensorboard_max_runs``, changed live through ``PUT
selection``); it is removed when the server stops, like a temporary log dir.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from .. import rest
from ..engine import processes
from ..engine.catalog import Catalog
from ..engine.fswatch import RunsWatcher
from ..engine.layout import LogDirLockedError, SourceError, logdir_in_use, logdir_overlap
from ..engine.monitor import PassReport, RunsMonitor
from ..engine.objectstore import ObjectStoreOptions, ObjectStoreSource, is_object_url
from ..engine.runs import RunSource, combine_sources, open_source, parse_source
from ..engine.tbprocess import TensorBoardProcess
from ..engine.view import TensorBoardView, temp_view_dir
from .changefeed import ChangeFeed

if TYPE_CHECKING:  # the app makes its runtime: only its settings are read here
    from .app import GuildImgApp

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

_MONITOR_STOP_WAIT = 3.0  # a pass in progress may go on: the process is ending


def _local_path(source: RunSource) -> str:
    """Where a source's runs are on this machine: an object-store source's copies."""
    return source.cache_root if isinstance(source, ObjectStoreSource) else source.path


class Runtime:
    """The monitor, the sources, TensorBoard and their status, for one server.

    Made (nothing started) from ``settings``, the app whose traitlets are every
    setting; :meth:`start` starts the monitor, :meth:`stop` stops everything and
    removes the view dir and a temporary log dir."""

    def __init__(self, settings: GuildImgApp, root_dir: str, runtime_dir: str) -> None:
        self._settings = settings
        self.root_dir = root_dir
        self._log = settings.log  # the server's logger: its log shows it
        self._own_logdir = not settings.logdir
        # Log dirs and view dirs that dead servers and kernels left behind.
        processes.clean_stale_dirs(processes.TEMP_LOGDIR_PREFIXES, logdir_in_use)
        if self._own_logdir:
            self.logdir_path = processes.temp_logdir(processes.SERVER_LOGDIR_PREFIX)
        else:
            self.logdir_path = os.path.abspath(os.path.join(root_dir, settings.logdir))
        self.refused_sources: list[rest.RefusedSource] = []
        self.run_sources: list[RunSource] = []
        for text in settings.sources:
            kind, path = parse_source(text, root_dir)
            if kind is None and not is_object_url(path) and not os.path.isdir(path):
                log.warning("Run source %r does not exist (yet); watching for it", path)
            try:
                source = open_source(
                    text, root_dir, missing_ok=True, object_options=self._object_options()
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
        if settings.watch_files:
            self.watcher = RunsWatcher(self._files_changed, force_polling=settings.force_polling)
        self.monitor = RunsMonitor(
            self.logdir_path,
            self._list_runs,
            watcher=self.watcher,
            reconcile_interval=settings.reconcile_interval,
            max_poll_share=settings.max_poll_share,
            max_reconcile_share=settings.max_reconcile_share,
            interval=settings.interval,
            log_images=settings.log_images,
            log_hparams=settings.log_hparams,
            max_images_per_run=settings.max_images_per_run or None,
            max_revisions_per_image=settings.max_revisions_per_image or None,
            max_image_bytes=settings.max_image_bytes or None,
            revision_steps=True,  # every revision on TensorBoard's step slider, dated
            index_process=settings.index_process,
            # The server's process: its long-lived objects after a large index are
            # the monitor's and Jupyter's own.
            freeze_after_index=True,
        )
        # The view follows each pass before the change feed wakes clients, so what they
        # read then (in_tensorboard) is already the pass's.
        self.view_dir = temp_view_dir(processes.SERVER_LOGDIR_PREFIX, self.logdir_path)
        self.view = TensorBoardView(
            self.view_dir, self.logdir_path, limit=settings.tensorboard_max_runs
        )
        self.view.attach(self.monitor)
        self.changes = ChangeFeed(self.monitor)
        self.catalog = Catalog(self.monitor, shown=self.view.shown)
        killed = TensorBoardProcess.cleanup_orphans(runtime_dir)
        if killed:
            log.warning("Stopped %d TensorBoard process(es) left by a dead server", len(killed))
        # Only the proxy knows where TensorBoard serves (a secret path per start).
        # TensorBoard reads the view, and its pid record names the view dir, which is
        # what orphan clean-up looks for on its command line.
        self.tensorboard = TensorBoardProcess(
            self.view_dir,
            extra_args=settings.tensorboard_args,
            samples_per_image=settings.image_history,
            ready_timeout=settings.tensorboard_ready_timeout,
            runtime_dir=runtime_dir,
            secret_prefix=True,
            files_needed=self.view.files_needed,
        )
        self.monitor_error = ""
        self._said_watching = False

    def _object_options(self) -> ObjectStoreOptions:
        """The object-store sources' settings."""
        settings = self._settings
        return ObjectStoreOptions(
            endpoint_url=settings.s3_endpoint_url,
            cache_dir=settings.object_cache_dir,
            cache_bytes=settings.object_cache_bytes,
            poll_interval=settings.object_poll_interval,
            max_object_bytes=settings.max_image_bytes,
        )

    def start(self) -> None:
        """Take the log dir and start the monitor. When another process holds the log
        dir, capture stays off and :attr:`monitor_error` says why."""
        try:
            self.monitor.acquire_logdir()
        except LogDirLockedError as e:
            # The server still serves what it can; status says why nothing is captured.
            self.monitor_error = str(e)
            log.error("jupyter_guildimg: capture is off: %s", e)
            return
        self.monitor.add_listener(self._log_watching)
        self.monitor.start()
        self._log.info(
            "jupyter_guildimg: watching %s into %r", ", ".join(self.source_paths), self.logdir_path
        )

    def _log_watching(self, report: PassReport) -> None:
        """Say once, after the first pass, how each source is followed."""
        watch = self.monitor.status()["watch"]
        if self._said_watching or watch is None:
            return
        self._said_watching = True
        for source in watch["sources"]:
            how = "file-system events" if source["mode"] == "events" else "polling"
            reason = f" ({source['reason']})" if source["reason"] else ""
            self._log.info("jupyter_guildimg: %r followed by %s%s", source["path"], how, reason)

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
        _kind, path = parse_source(text, self.root_dir)
        if not is_object_url(path) and not os.path.isdir(path):
            raise FileNotFoundError(f"run source {path!r} is not a directory")
        if path in self.source_paths:
            return next(s for s in self.run_sources if s.path == path)
        source = open_source(text, self.root_dir, object_options=self._object_options())
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
        _kind, full = parse_source(text, self.root_dir)
        for source in self.run_sources:
            if source.path == full:
                self.run_sources = [s for s in self.run_sources if s is not source]
                self._list_runs.sources = self.run_sources
                if isinstance(source, ObjectStoreSource):
                    source.close()  # its listings stop; its cache stays for a return
                return source
        raise LookupError(f"run source {full!r} is not watched")

    def start_tensorboard_soon(self) -> None:
        """Start TensorBoard in the background unless it is running or starting."""
        if self.tensorboard.status in ("stopped", "failed"):
            task = asyncio.ensure_future(self.tensorboard.start())
            self._tensorboard_start = task  # keep a reference: tasks are weakly held

    async def stop(self) -> None:
        """Stop TensorBoard and the monitor; the view dir and a temporary log dir are
        renamed away at once and deleted in the background, so a large one does not
        hold up the shutdown."""
        # At once, not one after the other: TensorBoard's grace period and the
        # monitor's wait for a pass in progress would add up past a container's stop.
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            self.tensorboard.stop(),
            loop.run_in_executor(None, self.monitor.close, _MONITOR_STOP_WAIT),
        )
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

    def status(self) -> rest.Status:
        """``monitor``: the monitor's status with ``sources`` (watched),
        ``refused_sources`` (configured but not watched: ``path`` and ``message``) and
        ``error`` (why capture is off, else None); ``tensorboard``: its state."""
        monitor: rest.MonitorStatus = {
            **self.monitor.status(),
            "sources": self.source_paths,
            "refused_sources": list(self.refused_sources),
            "error": self.monitor_error or None,
        }
        return {"monitor": monitor, "tensorboard": self.tensorboard.state()}
