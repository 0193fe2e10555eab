"""The runs monitor: keeps a TensorBoard log dir in step with a set of runs.

Each pass lists the runs, removes what belongs to runs that are gone, and for
each run brings its mirror (symlinks), image summaries and hparams up to date.
A pass costs one ``stat`` per directory and per image of every run, plus real
work only for what changed. A failure in one run is reported and the pass goes
on; a failure of a whole pass is logged and the thread goes on.

Only a run that is really gone is removed: runs a listing could not see (its
source, or a path at, above or below the run, could not be read; the listing
callback raised) are kept as they were, and what could not be read is reported
once. The monitor holds an exclusive lock on its log dir (see :mod:`.layout`).

With a file-system watcher the thread runs *targeted* passes, over just the runs
whose files changed, and a full pass rarely (see :mod:`.scheduler`). A targeted
pass re-reads those runs through their source (``RunSource.read_run``), and
never removes another run.

The first full pass, and any full pass meeting many runs it has never seen,
indexes them newest first in batches and publishes after each (views replaced,
generation up, pass listeners called with the report so far): the newest runs are
listed within seconds on any home, the others once indexed (not listed before,
never reported removed). Which runs are gone is decided once per full pass, from
its listing. ``status()["index"]`` says how far it is (see :mod:`.targets`).
What a pass does in the log dir, once it has its runs, is :mod:`.logsync`'s.

``generation`` is the one change counter: it goes up after every pass that changed
something, and :meth:`RunsMonitor.wait_for_change` waits for it. The server's change
feed and the in-kernel backend report this number.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from .. import rest
from . import gcfreeze, layout
from .layout import END_FILE, HPARAMS_FILE, LogDirLockedError, logdir_in_use
from .listchild import child_listing
from .logsync import LogdirPass
from .runlog import ChangeCount, PassReport, Problem, RunLogs, RunView
from .runrecord import Run, RunSource, listing_tick, sources_of
from .scheduler import (
    DEFAULT_MAX_POLL_SHARE,
    DEFAULT_MAX_RECONCILE_SHARE,
    PassScheduler,
    monitor_status,
)
from .targets import IndexProgress, LogdirOverlap, RunTargets
from .watchkeeper import Watcher

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_RECONCILE_INTERVAL",
    "END_FILE",
    "HPARAMS_FILE",
    "MIN_INTERVAL",
    "LogDirLockedError",
    "PassReport",
    "Problem",
    "RunView",
    "RunsMonitor",
    "logdir_in_use",
    "setup_logging",
]

log = logging.getLogger(__name__)

#: Seconds between passes, for every caller that does not choose (the server
#: extension's ``interval``, the in-kernel backend, the command line).
DEFAULT_INTERVAL = 1.0
MIN_INTERVAL = 0.5
DEFAULT_MAX_IMAGE_BYTES = 64 * 2**20
#: Seconds between full (reconciling) passes when a watcher reports changes.
DEFAULT_RECONCILE_INTERVAL = 60.0


def setup_logging() -> None:
    """Quiet TensorBoard's own chatty loggers; keep this package's warnings visible."""
    for name in ("tensorboard", "absl", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)
    package = logging.getLogger(__name__.rpartition(".")[0])
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)


class RunsMonitor:
    """Mirror runs into ``logdir`` with image summaries and hparams.

    ``list_runs_cb`` returns the current :class:`~jupyter_guildimg.engine.runs.Run`
    list; ``run_name_cb`` may name runs (names are made safe and unique either
    way). ``interval`` (seconds, at least 0.5; default :data:`DEFAULT_INTERVAL`)
    paces the thread started by :meth:`start`. At most ``max_images_per_run``
    distinct images are summarized per run, and at most ``max_revisions_per_image``
    revisions of each are kept, the oldest removed first (``None`` or 0: no cap). An
    image file larger than ``max_image_bytes`` is refused without being read
    (``None`` or 0: no limit). The monitor writes only inside ``logdir`` and only
    ever deletes symlinks and files it writes itself.

    By default image events are the spec's (Guild's): ``step`` and ``wall_time`` 0, so
    TensorBoard shows an image's newest revision only. ``revision_steps=True`` (the
    extension's choice) sets ``step`` to the revision counter (the REST ``revision``)
    and ``wall_time`` to the image's mtime in seconds, putting every revision kept on
    TensorBoard's step slider, dated. Either form continues a log dir of the other.

    The log dir is locked (:meth:`acquire_logdir`) before the first pass writes;
    :meth:`close` (or :meth:`stop`) lets it go. A pass running for longer than
    ``stall_after`` seconds (default: the larger of 30 s and 10 intervals) shows
    as ``stalled`` in :meth:`status` (one indexing in batches: that long without
    syncing a run).

    ``watcher`` (:mod:`.fswatch`'s ``RunsWatcher``, built with
    :meth:`notify_changed` as its ``on_change``) makes the thread event-driven: see
    :mod:`.scheduler`; ``reconcile_interval`` paces its full passes, which take at
    most ``max_reconcile_share`` of a core. Whoever built
    the watcher closes it (:meth:`close` does not). Targeted passes
    need the sources behind ``list_runs_cb`` (:func:`~.runrecord.sources_of`: a
    :func:`~.runrecord.combine_sources` callback or a source's ``list_runs``); with
    any other callable they are full passes. While full passes poll (no watcher, or
    a root polled), they are at least ``interval`` apart and take at most
    ``max_poll_share`` of a core (see :mod:`.scheduler`).

    ``index_process=True`` (the server extension's choice) has child processes make
    the log dirs of an index of many new runs (see :mod:`.indexchild`), so the
    owner's other threads keep the interpreter lock; the monitor indexes in its own
    threads if no child can start or one fails (reported in :attr:`problems`). A
    Guild home with many runs not read yet is then listed in a child too
    (:mod:`.listchild`).

    ``freeze_after_index=True`` (the server extension's choice, in a process of its
    own) keeps the objects of the process out of the garbage collector's full
    collections while a first index runs and once it is done (see :mod:`.gcfreeze`).
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        list_runs_cb: Callable[[], list[Run]],
        interval: float | None = None,
        log_images: bool = True,
        log_hparams: bool = True,
        run_name_cb: Callable[[Run], str] | None = None,
        *,
        max_images_per_run: int | None = 100,
        max_revisions_per_image: int | None = 100,
        max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        stall_after: float | None = None,
        revision_steps: bool = False,
        watcher: Watcher | None = None,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        max_poll_share: float = DEFAULT_MAX_POLL_SHARE,
        max_reconcile_share: float = DEFAULT_MAX_RECONCILE_SHARE,
        index_process: bool = False,
        freeze_after_index: bool = False,
    ) -> None:
        interval = DEFAULT_INTERVAL if interval is None else float(interval)
        if interval < MIN_INTERVAL:
            raise ValueError(f"interval must be at least {MIN_INTERVAL} s, got {interval}")
        if max_revisions_per_image is not None and max_revisions_per_image < 0:
            raise ValueError(f"max_revisions_per_image must be >= 0, got {max_revisions_per_image}")
        self.logdir = os.path.abspath(os.fspath(logdir))
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise NotADirectoryError(f"log dir {self.logdir!r} is not a directory")
        self.interval = interval
        self.log_images = log_images
        self.log_hparams = log_hparams
        self.max_images_per_run = max_images_per_run
        self.max_revisions_per_image = max_revisions_per_image or None
        self.max_image_bytes = max_image_bytes or None
        self.stall_after = stall_after
        self.revision_steps = revision_steps
        self.index_process = index_process
        self.freeze_after_index = freeze_after_index
        self._list_runs = list_runs_cb
        self._run_name_cb = run_name_cb
        self._runlogs = RunLogs()  # each run's log, the views, names and places
        self._overlap = LogdirOverlap(self.logdir)  # runs refused for overlapping it
        self._logdir_lock = layout.LogDirLock(self.logdir)
        self._logdir_error: str | None = None  # why the last pass could not lock the log dir
        self._pass_started: tuple[float, float] | None = None  # (monotonic, wall) of a pass
        self._lock = threading.Lock()
        self._count = ChangeCount()  # the generation
        self.targets = RunTargets()  # what targeted passes and the watcher need
        self.index = IndexProgress()  # the first index's progress; when a pass publishes
        self._scheduler = PassScheduler(
            self, watcher, reconcile_interval, max_poll_share, max_reconcile_share
        )
        self.problems: collections.deque[Problem] = collections.deque(maxlen=200)
        self.last_report: PassReport | None = None
        self.passes = 0
        self._listeners: list[Callable[[PassReport], None]] = []

    def add_listener(self, callback: Callable[[PassReport], None]) -> None:
        """Call ``callback(report)`` after every pass, and after each batch a full
        pass publishes (with the report so far), in the thread that ran it. A failing
        callback is logged and does not affect the monitor."""
        self._listeners.append(callback)

    def _call_listeners(self, report: PassReport) -> None:
        for callback in list(self._listeners):
            try:
                callback(report)
            except Exception:
                log.warning("A pass listener failed", exc_info=True)

    # -- passes -----------------------------------------------------------

    def run_once(self) -> None:
        """One pass now (Guild's name for it); see :meth:`run_pass`."""
        self.run_pass()

    def run_pass(
        self,
        only: Collection[str] | None = None,
        urgent: Callable[[], Collection[str]] | None = None,
    ) -> PassReport:
        """One pass now, returning what it did. Passes never overlap: a call made
        while the thread is in a pass waits for it. Raises
        :class:`LogDirLockedError` if another monitor holds the log dir.

        With ``only`` (absolute run dirs), a targeted pass: just those runs are read
        again through their source (new ones included); the others are left as they
        were, and a run is removed only when its dir is really gone. Without sources
        to read them through (a plain ``list_runs_cb``), it is a full pass.

        ``urgent()`` (the scheduler's; for a full pass) says which run dirs changed
        since the pass began: a routine full pass (no run new, gone, renamed or moved)
        reads those again, syncs and lists them at once (the generation goes up, the
        pass listeners are called), instead of after the rest."""
        with self._lock:
            started = time.monotonic()
            self._pass_started = (started, time.time())
            report = PassReport()
            sources = None if only is None and urgent is None else self.sources()
            try:
                self._pass(report, only, sources, urgent)
            finally:
                self._pass_started = None
                if only is None or sources is None:  # a full pass, even one that failed
                    self.index.finish(len(self.views))
            report.duration = time.monotonic() - started
            report.finished = time.time()
            full = only is None or sources is None
            if self.freeze_after_index and full and self.index.batched:
                gcfreeze.freeze_long_lived(len(self.views))
            self.passes += 1
            self.last_report = report
            if report.changed:
                self._count.bump()
        self._scheduler.passed_elsewhere()
        self._call_listeners(report)
        return report

    def _pass(
        self,
        report: PassReport,
        only: Collection[str] | None,
        sources: list[RunSource] | None,
        urgent: Callable[[], Collection[str]] | None = None,
    ) -> None:
        def urgent_runs() -> list[Run]:
            run_dirs = urgent() if urgent is not None else ()
            if not run_dirs or sources is None:
                return []
            return self.targets.targeted(run_dirs, sources, known, accept, problem)[0]

        work = LogdirPass(
            self._runlogs,
            self,
            report,
            self._run_name_cb,
            lambda: self._published(report),
            urgent_runs if urgent is not None and sources is not None else None,
        )
        known = self.known_runs()

        def accept(run: Run) -> bool:
            # Runs overlapping the log dir are refused (see .targets.LogdirOverlap);
            # each refusal is reported once.
            accepted, refusal = self._overlap.check(run)
            if refusal:
                work.problem(run.id, "", refusal)
            return accepted

        def problem(path: str, message: str) -> None:
            work.problem("", path, message)

        first_index = self.freeze_after_index and not self.index.first_done
        if only is None or sources is None:
            if first_index:
                gcfreeze.freeze()  # the server's own objects, before the runs come in
            # A cold Guild home is read in a child, not by threads taking the lock.
            allowed = child_listing.set(self.index_process)
            # Runs that change while a long listing runs are synced meanwhile.
            ticking = listing_tick.set(work.sync_while_listing)
            try:
                listing = self.targets.listing(self._list_runs, known, accept, problem)
            finally:
                listing_tick.reset(ticking)
                child_listing.reset(allowed)
        else:
            listing = self.targets.targeted(only, sources, known, accept, problem)
        if listing is None:  # nothing known about any run: everything stays as it was
            report.runs = len(self.views)
            return
        runs, kept = listing
        if first_index:
            # A full collection while the index runs would walk every run just listed
            # (0.16 s at 10,000 runs, the server's event loop waiting).
            gcfreeze.freeze()
        if self._overlap.logdir_inside:
            return
        self.acquire_logdir()
        full = only is None or sources is None
        if not full and work.update_in_place(runs, kept):
            return
        work.update_all(runs, kept, full=full)

    def _published(self, report: PassReport) -> None:
        """A full pass published a batch (see :class:`.logsync.LogdirPass`): the
        generation up, the listeners told."""
        self._count.bump()
        self._call_listeners(report)

    @property
    def views(self) -> tuple[RunView, ...]:
        """The runs' views, newest first: replaced whole after every pass (and after
        each batch a full pass publishes)."""
        return self._runlogs.views

    @property
    def generation(self) -> int:
        """Goes up after every pass that changed something, and on :meth:`mark_changed`."""
        return self._count.value

    def mark_changed(self) -> int:
        """Count a change made outside a pass (which runs TensorBoard shows), so that
        clients following :attr:`generation` look again; returns the new generation.
        Wakes :meth:`wait_for_change` and the change listeners."""
        return self._count.bump(notify=True)

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` in the thread that called :meth:`mark_changed`."""
        self._count.listeners.append(callback)

    def wait_for_change(self, since: int, timeout: float | None = None) -> int:
        """Block until :attr:`generation` is past ``since`` (at once if it already is),
        the monitor is closed, or ``timeout`` seconds passed; returns the generation
        then. For threads: an event loop is woken by :meth:`add_listener` instead."""
        return self._count.wait(since, timeout)

    # -- the thread -------------------------------------------------------

    def start(self) -> None:
        """Run passes in a daemon thread until :meth:`stop`: every ``interval``
        seconds, or driven by the watcher (see :mod:`.scheduler`)."""
        self._scheduler.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, wait (at most ``timeout`` seconds) for its pass in
        progress to end, and let the log dir's lock go (a later pass takes it again)."""
        self._scheduler.stop(timeout)
        self._logdir_lock.release()

    def notify_changed(self, paths: Iterable[str]) -> None:
        """Queue changed paths (absolute files or dirs, from any thread: the
        watcher's ``on_change``) for a targeted pass of their runs, which the thread
        runs at once."""
        self._scheduler.notify(paths)

    def sources(self) -> list[RunSource] | None:
        """The sources behind ``list_runs_cb`` now, ``None`` if it does not tell."""
        found = sources_of(self._list_runs)
        return None if found is None else list(found)

    def known_runs(self) -> Mapping[str, Run]:
        """The runs known now, by dir (a snapshot)."""
        return self._runlogs.known_runs()

    def close(self, timeout: float | None = 5.0) -> None:
        """:meth:`stop` for good: the log dir is let go and never taken (nor made)
        again, so it can be renamed or removed; later passes raise RuntimeError."""
        self._count.close()  # wakes every wait_for_change() now
        self.stop(timeout)

    def acquire_logdir(self) -> None:
        """Make the log dir and take its exclusive lock; idempotent. Every pass calls
        it first. Raises :class:`LogDirLockedError` (naming the holder's pid where
        the system tells it) if another monitor holds it."""
        if self._count.closed:
            raise RuntimeError(f"the monitor of {self.logdir!r} is closed")
        os.makedirs(self.logdir, exist_ok=True)
        try:
            self._logdir_lock.acquire()
        except LogDirLockedError as e:
            self._logdir_error = str(e)
            raise
        self._logdir_error = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: no pass will write again."""
        return self._count.closed

    @property
    def running(self) -> bool:
        return self._scheduler.running

    @property
    def stall_bound(self) -> float:
        """Seconds after which a pass still running counts as stalled."""
        if self.stall_after is not None:
            return self.stall_after
        return max(30.0, 10 * self.interval)

    def status(self) -> rest.MonitorState:
        """JSON-able state: the thread, the pass in progress (``pass_started``,
        ``pass_running_for``, ``stalled`` once it runs past :attr:`stall_bound`),
        ``logdir_error`` (why the log dir could not be taken, else ``None``), the
        last pass, the latest problems, ``watch`` (how sources are watched:
        ``{"sources", "watches", "reconcile_interval"}``; ``None`` without a watcher),
        ``index`` (``{"indexed", "found", "done"}``: the first index's progress) and
        ``poll_interval`` (seconds between polling passes, adapted to their cost;
        ``None`` while no root is polled)."""
        return monitor_status(self, self._scheduler)
