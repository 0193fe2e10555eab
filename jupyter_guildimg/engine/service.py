"""Everything the server extension runs except TensorBoard, behind one set of calls:
the run sources (added and removed live), the monitor and its file watcher, the
catalog and TensorBoard's view. It is made from :class:`ServiceSettings`, plain data,
so the same service runs in the Jupyter server's own process or in a process of its
own (:mod:`.monitorhost`), where its threads never take the server's interpreter lock.

Every call answers plain data (JSON-able dicts, bytes, :class:`ImageBytes`) and
raises only the errors in :data:`SERVICE_ERRORS`, which say what is wrong for the user:
what crosses a process boundary is what the REST API answers anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import rest
from .catalog import AmbiguousRunError, Catalog, ImageBytes, NotFoundError
from .fswatch import RunsWatcher
from .layout import LogDirLockedError, SourceError, logdir_overlap
from .monitor import PassReport, RunsMonitor
from .objectstore import ObjectStoreOptions, ObjectStoreSource, is_object_url
from .runs import RunSource, combine_sources, open_source, parse_source
from .selection import SelectionError
from .sourceinfo import sources_body
from .thumbnails import ThumbnailError
from .view import TensorBoardView

__all__ = [
    "SERVICE_ERRORS",
    "CaptureOffError",
    "MonitorService",
    "ServiceSettings",
]

log = logging.getLogger(__name__)


class CaptureOffError(RuntimeError):
    """A pass was asked for while capture is off (another process holds the log dir)."""


# What the service's calls raise for a bad request, by name: a process boundary
# carries the name and the message, and the caller raises the same class again.
SERVICE_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        NotFoundError,
        AmbiguousRunError,
        SelectionError,
        SourceError,
        ThumbnailError,
        CaptureOffError,
        FileNotFoundError,
        LookupError,
    )
}


@dataclass(frozen=True)
class ServiceSettings:
    """The server extension's settings that the service needs, as plain data (see
    :class:`~jupyter_guildimg.server.app.GuildImgApp` for each). ``logdir`` and
    ``view_dir`` are absolute and already made; 0 means "no cap" for the caps."""

    sources: list[str]
    root_dir: str
    logdir: str
    view_dir: str
    interval: float
    watch_files: bool = True
    force_polling: bool = False
    reconcile_interval: float = 60.0
    max_reconcile_share: float = 0.01
    max_poll_share: float = 0.1
    index_process: bool = True
    log_images: bool = True
    log_hparams: bool = True
    max_images_per_run: int = 0
    max_revisions_per_image: int = 0
    max_image_bytes: int = 0
    tensorboard_max_runs: int = 0
    object_options: dict[str, object] = field(default_factory=dict)


def _local_path(source: RunSource) -> str:
    """Where a source's runs are on this machine: an object-store source's copies."""
    return source.cache_root if isinstance(source, ObjectStoreSource) else source.path


class MonitorService:
    """The sources, monitor, watcher, catalog and view of one server.

    Made (nothing started) from ``settings``; :meth:`start` starts the monitor,
    :meth:`close` stops everything. ``server_log`` gets the few lines the user reads in
    the server's log (what is watched, and how); every other line goes to this
    package's module loggers. Thread-safe: any call from any thread."""

    def __init__(self, settings: ServiceSettings, server_log: logging.Logger) -> None:
        self.settings = settings
        self._server_log = server_log
        self._object_options = ObjectStoreOptions(**settings.object_options)  # type: ignore[arg-type]
        self.refused_sources: list[rest.RefusedSource] = []
        self.run_sources: list[RunSource] = []
        for text in settings.sources:
            self._open_configured(text)
        self._list_runs = combine_sources(self.run_sources)
        # The watcher calls the monitor, which takes the watcher: made first, it reaches
        # the monitor once there is one.
        self.watcher: RunsWatcher | None = None
        if settings.watch_files:
            self.watcher = RunsWatcher(self._files_changed, force_polling=settings.force_polling)
        self.monitor = RunsMonitor(
            settings.logdir,
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
            # A long-lived process: after a large index its long-lived objects are
            # the monitor's (and, in the server's process, Jupyter's).
            freeze_after_index=True,
        )
        # The view follows each pass before change listeners hear of it, so what
        # clients read then (in_tensorboard) is already the pass's.
        self.view = TensorBoardView(
            settings.view_dir, settings.logdir, limit=settings.tensorboard_max_runs
        )
        self.view.attach(self.monitor)
        self.catalog = Catalog(self.monitor, shown=self.view.shown)
        self.monitor_error = ""
        self._said_watching = False
        # Calls come from several threads at once: a source added while another is
        # removed must not undo it.
        self._sources_lock = threading.Lock()

    def _open_configured(self, text: str) -> None:
        """Open a configured source, or say in :attr:`refused_sources` why not."""
        kind, path = parse_source(text, self.settings.root_dir)
        if kind is None and not is_object_url(path) and not os.path.isdir(path):
            log.warning("Run source %r does not exist (yet); watching for it", path)
        try:
            source = open_source(
                text, self.settings.root_dir, missing_ok=True, object_options=self._object_options
            )
        except SourceError as e:  # an object store whose package is not installed
            log.error("jupyter_guildimg: not watching a source: %s", e)
            self.refused_sources.append({"path": path, "message": str(e)})
            return
        problem = logdir_overlap(_local_path(source), self.settings.logdir)
        if problem:
            log.error("jupyter_guildimg: not watching a source: %s", problem)
            self.refused_sources.append({"path": source.path, "message": problem})
        else:
            self.run_sources.append(source)

    # -- lifecycle ----------------------------------------------------------

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
        self._server_log.info(
            "jupyter_guildimg: watching %s into %r",
            ", ".join(self.source_paths),
            self.settings.logdir,
        )

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever :attr:`generation` went up (after a pass that
        changed something, or a change marked outside one), from the thread that
        counted. A failing callback is logged and does not affect the monitor."""

        def after_pass(report: PassReport) -> None:
            if report.changed:
                callback()

        self.monitor.add_listener(after_pass)
        self.monitor.add_change_listener(callback)

    def close(self, timeout: float) -> bool:
        """Stop the monitor (waiting at most ``timeout`` seconds for a pass in
        progress), the watcher, the object stores' listings, the view and the catalog.
        Returns False when the pass did not end in time (it is left to end)."""
        self.monitor.close(timeout)
        for source in self.run_sources:
            if isinstance(source, ObjectStoreSource):
                source.close()
        if self.watcher is not None:
            self.watcher.close()
        self.view.close()
        self.catalog.close()
        return not self.monitor.running

    def _log_watching(self, report: PassReport) -> None:
        """Say once, after the first pass, how each source is followed."""
        watch = self.monitor.status()["watch"]
        if self._said_watching or watch is None:
            return
        self._said_watching = True
        for source in watch["sources"]:
            how = "file-system events" if source["mode"] == "events" else "polling"
            reason = f" ({source['reason']})" if source["reason"] else ""
            self._server_log.info(
                "jupyter_guildimg: %r followed by %s%s", source["path"], how, reason
            )

    def _files_changed(self, paths: set[str]) -> None:
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.notify_changed(paths)

    # -- what the API asks --------------------------------------------------

    @property
    def generation(self) -> int:
        return self.monitor.generation

    @property
    def source_paths(self) -> list[str]:
        return [source.path for source in self.run_sources]

    def status(self) -> rest.MonitorStatus:
        """The monitor's status with ``sources`` (watched), ``refused_sources``
        (configured but not watched: ``path`` and ``message``) and ``error`` (why
        capture is off, else None)."""
        return {
            **self.monitor.status(),
            "sources": self.source_paths,
            "refused_sources": list(self.refused_sources),
            "error": self.monitor_error or None,
        }

    def runs_body(self, image: str | None, q: str | None) -> bytes:
        return self.catalog.runs_body(image, q)

    def run(self, key: str) -> rest.Run:
        return self.catalog.run(key)

    def images(self, key: str) -> rest.RunImages:
        return self.catalog.images(key)

    def image(self, key: str, path: str, revision: int | None) -> ImageBytes:
        return self.catalog.image(key, path, revision)

    def thumbnail(self, key: str, path: str, width: int, revision: int | None) -> ImageBytes:
        return self.catalog.thumbnail(key, path, width, revision)

    def run_pass(self) -> rest.RefreshReport:
        """Run a pass now; CaptureOffError when another process holds the log dir."""
        if self.monitor_error:
            raise CaptureOffError(f"capture is off: {self.monitor_error}")
        return self.monitor.run_pass().to_json()

    def selection(self) -> rest.Selection:
        return self.view.selection()

    def put_selection(self, body: object) -> rest.Selection:
        return self.view.put(body, find=self.catalog.find)

    def files_needed(self) -> int:
        return self.view.files_needed()

    def sources(self) -> rest.Sources:
        return sources_body(self.run_sources, self.settings.root_dir)

    def add_source(self, text: str) -> rest.Sources:
        """Watch one more source (``guild:``/``dir:`` prefixes allowed; relative to the
        root directory). Raises FileNotFoundError for a path that is not a directory and
        :class:`SourceError` for one that contains the log dir or lies inside it."""
        _kind, path = parse_source(text, self.settings.root_dir)
        if not is_object_url(path) and not os.path.isdir(path):
            raise FileNotFoundError(f"run source {path!r} is not a directory")
        with self._sources_lock:
            self._add_source(text, path)
        return self.sources()

    def _add_source(self, text: str, path: str) -> None:
        if path not in self.source_paths:
            source = open_source(text, self.settings.root_dir, object_options=self._object_options)
            problem = logdir_overlap(_local_path(source), self.settings.logdir)
            if problem:
                raise SourceError(problem)
            if source.path not in self.source_paths:
                self.run_sources = [*self.run_sources, source]
                self._list_runs.sources = self.run_sources

    def remove_source(self, text: str) -> rest.Sources:
        """Stop watching a source, named as :attr:`source_paths` lists it or as it was
        added. Its runs are removed from the log dir at the next pass (the others stay).
        Raises LookupError when it is not watched."""
        _kind, full = parse_source(text, self.settings.root_dir)
        with self._sources_lock:
            removed = next((s for s in self.run_sources if s.path == full), None)
            if removed is None:
                raise LookupError(f"run source {full!r} is not watched")
            self.run_sources = [s for s in self.run_sources if s is not removed]
            self._list_runs.sources = self.run_sources
        if isinstance(removed, ObjectStoreSource):
            removed.close()  # its listings stop; its cache stays for a return
        return self.sources()
