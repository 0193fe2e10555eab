"""The monitor, catalog and TensorBoard inside the kernel, for a kernel that no server
extension serves (started outside Jupyter's server, or with the extension off)."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import socket
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar, cast

from .. import rest
from ..engine import processes
from ..engine.catalog import Catalog, NotFoundError
from ..engine.fswatch import RunsWatcher
from ..engine.layout import SourceError, logdir_in_use, logdir_overlap
from ..engine.monitor import PassReport, RunsMonitor
from ..engine.runs import (
    RunSource,
    combine_sources,
    default_sources,
    open_source,
    parse_source,
)
from ..engine.selection import SelectionError
from ..engine.sourceinfo import sources_body
from ..engine.tbprocess import TensorBoardProcess
from ..engine.thumbnails import THUMB_MAX, THUMB_MIN, ThumbnailError
from ..engine.view import TensorBoardView, temp_view_dir
from .backend import START_TIMEOUT, Backend, BackendError, check_source

__all__ = ["LocalBackend"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _LoopThread:
    """An asyncio loop in a daemon thread, for TensorBoardProcess: the kernel's own
    loop must never wait on TensorBoard."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="guildimg-tb-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Nothing may be left pending when the loop closes (TensorBoard was stopped
            # first, so this is only a start() caller that has not resumed yet).
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class LocalBackend(Backend):
    """A monitor (a temporary log dir, a pass every second, started at once), the
    API's catalog and, on first use, TensorBoard, all inside this process: for a kernel
    that no server extension serves. ``sources`` default to the Guild home if it
    exists, else ``./runs`` (watched until it appears); a given source that does not
    exist raises FileNotFoundError, one that contains the log dir :class:`SourceError`.
    Everything started is stopped by :meth:`close`, or at interpreter exit, so nothing
    outlives the kernel; a log dir left by a kernel that was killed is removed by the
    next one (or the next server).

    :meth:`tensorboard_src` is ``http://127.0.0.1:<port>/``: it only works for a
    browser on the machine running the kernel."""

    description = "in this kernel (no server extension reachable)"

    def __init__(
        self, sources: Sequence[str] | None = None, *, runtime_dir: str | None = None
    ) -> None:
        if sources:
            self._sources = [open_source(check_source(path)) for path in sources]
        else:
            self._sources = [open_source(text, missing_ok=True) for text in default_sources()]
        if runtime_dir is None:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        self._runtime_dir = runtime_dir
        processes.clean_stale_dirs(processes.TEMP_LOGDIR_PREFIXES, logdir_in_use)
        self.logdir = processes.temp_logdir(processes.KERNEL_LOGDIR_PREFIX)
        for source in self._sources:
            if problem := logdir_overlap(source.path, self.logdir):
                os.rmdir(self.logdir)
                raise SourceError(problem)
        # One callback whose sources the monitor sees, for its targeted passes.
        self._list_runs = combine_sources(self._sources)
        # File-system events, as the server follows them (the watcher reaches the
        # monitor through _files_changed once there is one).
        self.watcher = RunsWatcher(self._files_changed)
        # Every revision on TensorBoard's step slider, dated (the extension's events).
        self.monitor = RunsMonitor(
            self.logdir, self._list_runs, revision_steps=True, watcher=self.watcher
        )
        self.monitor.acquire_logdir()  # a new dir: free; the lock marks it in use
        # TensorBoard reads a view of the runs selected, updated after every pass.
        view_dir = temp_view_dir(processes.KERNEL_LOGDIR_PREFIX, self.logdir)
        self.view = TensorBoardView(view_dir, self.logdir)
        self.view.attach(self.monitor)
        self.catalog = Catalog(self.monitor, shown=self.view.shown)
        # Chosen now, so tensorboard_src() can answer before TensorBoard has started.
        self._port = _free_port()
        self.tensorboard = TensorBoardProcess(
            view_dir, runtime_dir=runtime_dir, port=self._port, files_needed=self.view.files_needed
        )
        self._loop: _LoopThread | None = None
        self._starting: concurrent.futures.Future[Any] | None = None
        self._lock = threading.Lock()
        # Notified after each pass that changed something; the count is the monitor's.
        self._changed = threading.Condition()
        self._closed = False
        self.monitor.add_listener(self._on_pass)
        atexit.register(self.close)
        self.monitor.start()

    def __repr__(self) -> str:
        return f"LocalBackend({[source.path for source in self._sources]!r})"

    def _files_changed(self, paths: set[str]) -> None:
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.notify_changed(paths)

    def _on_pass(self, report: PassReport) -> None:
        if report.changed:
            with self._changed:
                self._changed.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("the in-kernel monitor was closed")

    def status(self) -> rest.Status:
        self._check_open()
        monitor = {
            **self.monitor.status(),
            "sources": [source.path for source in self._sources],
            "refused_sources": [],
            "error": None,
        }
        return {
            "monitor": cast(rest.MonitorStatus, monitor),
            "tensorboard": self._tensorboard_state(),
        }

    def runs(self, image: str | None = None, q: str | None = None) -> list[rest.Run]:
        self._check_open()
        return self.catalog.runs(image, q)

    def run(self, key: str) -> rest.Run:
        self._check_open()
        try:
            return self.catalog.run(key)
        except NotFoundError as e:
            raise BackendError(str(e), 404) from None

    def images(self, run_id: str) -> rest.RunImages:
        self._check_open()
        try:
            return self.catalog.images(run_id)
        except NotFoundError as e:
            raise BackendError(str(e), 404) from None

    def image(
        self, run_id: str, path: str, rev: int | None = None, thumb: int | None = None
    ) -> bytes:
        self._check_open()
        if thumb is not None and not THUMB_MIN <= thumb <= THUMB_MAX:
            raise BackendError(f"thumb must be between {THUMB_MIN} and {THUMB_MAX}", 400)
        try:
            if thumb is None:
                return self.catalog.image(run_id, path, rev).data
            return self.catalog.thumbnail(run_id, path, thumb, rev).data
        except NotFoundError as e:
            raise BackendError(str(e), 404) from None
        except ThumbnailError as e:
            raise BackendError(str(e), 422) from None

    def refresh(self) -> rest.RefreshReport:
        self._check_open()
        return self.monitor.run_pass().to_json()

    def sources(self) -> rest.Sources:
        self._check_open()
        with self._lock:
            return sources_body(self._sources, os.getcwd())

    def add_source(self, path: str) -> rest.Sources:
        """Watch ``path`` too (FileNotFoundError if it does not exist, SourceError if it
        contains the log dir or lies inside it)."""
        self._check_open()
        source: RunSource = open_source(check_source(path))
        if problem := logdir_overlap(source.path, self.logdir):
            raise SourceError(problem)
        with self._lock:
            if all(known.path != source.path for known in self._sources):
                self._sources = [*self._sources, source]
                self._list_runs.sources = self._sources
            return sources_body(self._sources, os.getcwd())

    def remove_source(self, path: str) -> rest.Sources:
        """Stop watching ``path`` (BackendError 404 if it is not watched)."""
        self._check_open()
        _kind, full = parse_source(path)
        with self._lock:
            kept = [known for known in self._sources if known.path != full]
            if len(kept) == len(self._sources):
                raise BackendError(f"run source {full!r} is not watched", 404)
            self._sources = kept
            self._list_runs.sources = kept
            return sources_body(self._sources, os.getcwd())

    # -- TensorBoard ------------------------------------------------------

    def selection(self) -> rest.Selection:
        self._check_open()
        return self.view.selection()

    def set_selection(
        self,
        mode: rest.SelectionMode,
        runs: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> rest.Selection:
        self._check_open()
        try:
            return self.view.set_selection(mode, runs, filter, find=self.catalog.find)
        except SelectionError as e:
            raise BackendError(str(e), 400) from None

    def _tensorboard_loop(self) -> _LoopThread:
        with self._lock:
            self._check_open()
            if self._loop is None:
                killed = TensorBoardProcess.cleanup_orphans(self._runtime_dir)
                if killed:
                    log.warning("Stopped %d TensorBoard(s) left by a dead kernel", len(killed))
                self._loop = _LoopThread()
            return self._loop

    def _tensorboard_state(self) -> rest.TensorBoardState:
        if self._loop is None:
            return self.tensorboard.state()

        async def state() -> rest.TensorBoardState:
            return self.tensorboard.state()

        # Read on the loop that changes it, so the snapshot is consistent.
        return self._loop.run(state(), timeout=10)

    def start_tensorboard(self) -> rest.TensorBoardState:
        """Start TensorBoard unless it is ready (a start in progress is waited for, as
        :meth:`TensorBoardProcess.start` does); its state once ready or failed."""

        async def start() -> rest.TensorBoardState:
            await self.tensorboard.start()
            return self.tensorboard.state()

        return self._tensorboard_loop().run(start(), timeout=START_TIMEOUT)

    def restart_tensorboard(self) -> rest.TensorBoardState:
        async def restart() -> rest.TensorBoardState:
            await self.tensorboard.restart()
            return self.tensorboard.state()

        return self._tensorboard_loop().run(restart(), timeout=START_TIMEOUT)

    def stop_tensorboard(self) -> rest.TensorBoardState:
        self._check_open()
        if self._loop is not None:
            self._loop.run(self.tensorboard.stop(), timeout=30)
        return self._tensorboard_state()

    def tensorboard_src(self) -> str:
        """``http://127.0.0.1:<port>/``, starting TensorBoard in the background if it
        was never started. Only a browser on this machine can open it."""
        loop = self._tensorboard_loop()
        if self.tensorboard.status == "stopped":
            self._starting = loop.submit(self.tensorboard.start())
        return f"http://127.0.0.1:{self.tensorboard.port or self._port}/"

    # -- changes and the end ------------------------------------------------

    def wait_changes(self, since: int, timeout: float = 25) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.monitor.generation > since or self._closed, timeout)
            return self.monitor.generation

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop TensorBoard, the monitor and the loop thread; remove the log dir (renamed
        away at once, deleted in the background)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
        atexit.unregister(self.close)
        with self._changed:
            self._changed.notify_all()  # wake every wait_changes() now
        if loop is not None:
            try:
                loop.run(self.tensorboard.stop(), timeout=30)
            except (concurrent.futures.TimeoutError, RuntimeError):
                log.warning("TensorBoard did not stop in time: killing it", exc_info=True)
                self.tensorboard.stop_now()
            loop.close()
        self.monitor.close()
        self.watcher.close()
        self.view.close()
        self.catalog.close()
        processes.remove_tree_soon(self.view.view_dir)
        processes.remove_tree_soon(self.logdir)
