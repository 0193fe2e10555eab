"""When the runs monitor's passes run: the monitor's thread.

Without a watcher, a full pass runs every ``interval`` seconds (polling). With one
(:class:`.watchkeeper.Watcher`, :mod:`.fswatch`'s ``RunsWatcher``), the file system
says what changed: the run dirs it reports get a *targeted* pass at once (the
watcher has already debounced them), a full reconciling pass runs every
``reconcile_interval`` seconds as the safety net for missed events, and every
``interval`` seconds while some root cannot be watched (it is polled). After every
pass the watcher is told what to watch (:mod:`.watchkeeper`).

Polling adapts to its cost: full passes while polling are at least ``interval``
apart, and far enough apart that they take at most ``max_poll_share`` of a core
(the wait is the last polling pass's duration divided by the share). Reconciling
passes likewise: at least ``reconcile_interval`` apart, and at most
``max_reconcile_share`` of a core. A pass that
indexed many new runs in batches is indexing, not polling: its duration is not
counted.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from .. import rest
from .layout import LogDirLockedError
from .racy import RACY_NS
from .runlog import PassReport, Problem
from .targets import FIRST_BATCH
from .watchkeeper import Watcher, WatchKeeper

if TYPE_CHECKING:
    from .monitor import RunsMonitor

__all__ = [
    "DEFAULT_MAX_POLL_SHARE",
    "DEFAULT_MAX_RECONCILE_SHARE",
    "MAX_QUEUED",
    "PassScheduler",
    "monitor_status",
]

log = logging.getLogger(__name__)

#: Changed paths kept for the next targeted pass; past this many, a full pass is
#: cheaper than mapping them all (and memory stays bounded while the thread is stopped).
MAX_QUEUED = 10_000
#: The share of a core polling passes may take at most.
DEFAULT_MAX_POLL_SHARE = 0.1
#: The share of a core reconciling passes may take at most (events are followed).
DEFAULT_MAX_RECONCILE_SHARE = 0.01


class PassScheduler:
    """The thread that runs ``monitor``'s passes (see the module's docstring).

    :meth:`notify` may be called from any thread; everything else from the
    monitor's owner."""

    def __init__(
        self,
        monitor: RunsMonitor,
        watcher: Watcher | None,
        reconcile_interval: float,
        max_poll_share: float = DEFAULT_MAX_POLL_SHARE,
        max_reconcile_share: float = DEFAULT_MAX_RECONCILE_SHARE,
    ) -> None:
        if reconcile_interval <= 0:
            raise ValueError(f"reconcile_interval must be positive, got {reconcile_interval}")
        for name, share in (
            ("max_poll_share", max_poll_share),
            ("max_reconcile_share", max_reconcile_share),
        ):
            if not 0 < share <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {share}")
        self.max_poll_share = float(max_poll_share)
        self.max_reconcile_share = float(max_reconcile_share)
        self.poll_cost = 0.0  # seconds the last full pass that was not indexing took
        # Weak: a monitor dropped without close() is collected (letting its log dir's
        # lock go) as before; the thread holds it strongly while it runs.
        self._monitor = weakref.ref(monitor)
        self.watch = WatchKeeper(lambda: self.monitor, watcher, self.notify)
        self.reconcile_interval = float(reconcile_interval)
        self._wake = threading.Condition()
        self._queued: set[str] = set()  # changed paths, for the next targeted pass
        self._handed: set[str] = set()  # of those, the ones a full pass was told of
        self._full_wanted = False
        self._rewatch = False  # a pass ran outside the thread: the watch may be stale
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def monitor(self) -> RunsMonitor:
        monitor = self._monitor()
        if monitor is None:
            raise RuntimeError("the monitor is gone")
        return monitor

    # -- from any thread --------------------------------------------------

    def notify(self, paths: Iterable[str]) -> None:
        """Queue changed paths (absolute) for a targeted pass and wake the thread."""
        with self._wake:
            self._queued.update(paths)
            if len(self._queued) > MAX_QUEUED:
                self._queued.clear()
                self._full_wanted = True
            self._wake.notify_all()

    def passed_elsewhere(self) -> None:
        """A pass ran in another thread (a refresh): the thread adjusts the watch to
        the runs it found, as after a pass of its own."""
        if threading.current_thread() is self._thread:
            return
        with self._wake:
            self._rewatch = True
            self._wake.notify_all()

    # -- the thread -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(self.monitor,), name="guildimg-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait (at most ``timeout`` s) for its pass to end."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def full_interval(self) -> float:
        """Seconds between full passes now: :meth:`poll_interval` while
        :meth:`polling`, else :meth:`reconciling_interval`."""
        return self.poll_interval() if self.polling() else self.reconciling_interval()

    def reconciling_interval(self) -> float:
        """Seconds between reconciling passes: ``reconcile_interval``, or more when a
        full pass is costly, so that they take at most ``max_reconcile_share`` of a
        core (at 100,000 runs a full pass takes seconds: once a minute, that was
        a tenth of a core spent while nothing changed)."""
        return max(self.reconcile_interval, self.poll_cost / self.max_reconcile_share)

    def poll_interval(self) -> float:
        """Seconds between polling passes: ``interval``, or more when a pass is costly,
        so that polling takes at most ``max_poll_share`` of a core."""
        return max(self.monitor.interval, self.poll_cost / self.max_poll_share)

    def polling(self) -> bool:
        """Whether full passes poll: without a watcher, while a root is polled, or
        when the monitor cannot tell its sources (a plain callback)."""
        return self.watch.polling()

    def _loop(self, monitor: RunsMonitor) -> None:
        # ``monitor`` keeps the monitor alive while its thread runs.
        full_at = time.monotonic()  # the first pass is a full one
        self.watch.update()
        self._newest_first(monitor)
        self.watch.await_ready()
        # Runs a targeted pass read while their files were "racy" (written within the
        # file system's clock tick), read once more when that window has passed: a
        # write that landed in it (a run's attrs as it is being made) is not left to
        # the reconciling pass. Run dir -> when (monotonic).
        settle: dict[str, float] = {}
        while not self._stop.is_set():
            with self._wake:
                due = min([full_at, *settle.values()])
                self._wake.wait_for(
                    lambda: (
                        bool(self._queued)
                        or self._full_wanted
                        or self._rewatch
                        or self._stop.is_set()
                    ),
                    max(0.0, due - time.monotonic()),
                )
                paths, self._queued, self._handed = self._queued, set(), set()
                rewatch, self._rewatch = self._rewatch, False
                now = time.monotonic()
                full = self._full_wanted or now >= full_at
                self._full_wanted = False
            if self._stop.is_set():
                break
            settled = {run_dir for run_dir, when in settle.items() if when <= now}
            for run_dir in settled:
                del settle[run_dir]
            if not full:
                run_dirs = self.run_dirs_for(paths)
                full = run_dirs is None
                if run_dirs:
                    for run_dir in run_dirs:
                        settle.setdefault(run_dir, now + RACY_NS / 1e9 + 0.1)
                if run_dirs or settled:
                    self._run((run_dirs or set()) | settled)
            if full:
                report = self._run(None, self.take_urgent)
                if report is not None and not monitor.index.batched:
                    self.poll_cost = report.duration
            # First: the watcher knows which roots it polls after it.
            self.watch.update(full=full or rewatch)
            if full:
                full_at = time.monotonic() + self.full_interval()
            elif self.polling():
                # A watch failed since the last full pass (a limit reached): its roots
                # are polled from now on, not at the next reconciling pass.
                full_at = min(full_at, time.monotonic() + self.poll_interval())

    def _newest_first(self, monitor: RunsMonitor) -> None:
        """Before the first full pass over a large home: the newest runs, as the
        sources' start times name them, read and listed by a targeted pass. They show
        within a second or two, before the full listing has read every run."""
        sources = monitor.sources()
        if not sources or monitor.known_runs():
            return
        started: dict[str, float] = {}
        for source in sources:
            try:
                started.update(source.start_times(FIRST_BATCH) or {})
            except Exception:
                log.warning("Cannot read the start times of %r", source, exc_info=True)
        if len(started) <= FIRST_BATCH:  # the full pass lists them all at once anyway
            return
        newest = sorted(started, key=started.__getitem__, reverse=True)[:FIRST_BATCH]
        self._run(set(newest))

    def take_urgent(self) -> set[str]:
        """For the full pass in progress: the run dirs of paths changed since it began
        (each path told once). They stay queued: the targeted pass after it reads them
        once more, and settles them (a full pass only lists them sooner)."""
        with self._wake:
            paths = self._queued - self._handed
            self._handed |= paths
        if not paths:
            return set()
        return self.run_dirs_for(paths) or set()

    def _run(
        self, only: Collection[str] | None, urgent: Callable[[], set[str]] | None = None
    ) -> PassReport | None:
        """One pass; its report, ``None`` if it failed."""
        monitor = self.monitor
        try:
            return monitor.run_pass(only=only, urgent=urgent)
        except LogDirLockedError as e:
            # Capture stays off while another monitor holds the log dir; it
            # starts by itself once that one lets go. Said once, not every pass.
            if not any(p.message == str(e) for p in monitor.problems):
                log.warning("Not capturing", exc_info=True)
                monitor.problems.append(Problem(time.time(), "", "", str(e)))
        except Exception as e:
            # One bad pass (an unreadable log dir, a failing source) must not
            # end monitoring: the next pass may well succeed.
            log.exception("Monitor pass failed; trying again in %s s", monitor.interval)
            monitor.problems.append(Problem(time.time(), "", "", f"pass failed: {e!r}"))
        return None

    def run_dirs_for(self, paths: Iterable[str]) -> set[str] | None:
        """The run dirs changed ``paths`` belong to (see :mod:`.targets`); ``None``
        when only a full pass can tell."""
        sources = self.monitor.sources()
        if sources is None:
            return None
        return self.monitor.targets.run_dirs_for(paths, sources, self.monitor.known_runs())


def monitor_status(monitor: RunsMonitor, scheduler: PassScheduler) -> rest.MonitorState:
    """:meth:`RunsMonitor.status <.monitor.RunsMonitor.status>`."""
    report = monitor.last_report
    started = monitor._pass_started
    running_for = None if started is None else time.monotonic() - started[0]
    # A pass indexing in batches is stalled only once it stops syncing runs.
    quiet_for = (
        None if started is None else time.monotonic() - max(started[0], monitor.index.progressed)
    )
    return {
        "running": monitor.running,
        "logdir": monitor.logdir,
        "interval": monitor.interval,
        "passes": monitor.passes,
        "generation": monitor.generation,
        "last_pass": None if report is None else round(report.finished, 3),
        "last_pass_duration": None if report is None else round(report.duration, 4),
        "runs": 0 if report is None else report.runs,
        "images": 0 if report is None else report.images,
        "pass_started": None if started is None else round(started[1], 3),
        "pass_running_for": None if running_for is None else round(running_for, 3),
        "stalled": quiet_for is not None and quiet_for > monitor.stall_bound,
        "logdir_error": monitor._logdir_error,
        "problems": [
            {"time": round(p.time, 3), "run": p.run, "path": p.path, "message": p.message}
            for p in list(monitor.problems)[-20:]
        ],
        "watch": scheduler.watch.status(scheduler.reconciling_interval()),
        "index": monitor.index.state(monitor.running),
        "poll_interval": round(scheduler.poll_interval(), 3) if scheduler.polling() else None,
    }
