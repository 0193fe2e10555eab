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
from collections.abc import Callable
from typing import Any

from . import layout
from .layout import END_FILE, HPARAMS_FILE, LogDirLockedError, logdir_in_use
from .naming import assign_names
from .runlog import PassReport, Problem, RunLog, RunView
from .runrecord import Run, Unreadable, newest_first_key

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_IMAGE_BYTES",
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
    as ``stalled`` in :meth:`status`.
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
        self._list_runs = list_runs_cb
        self._run_name_cb = run_name_cb
        self._logs: dict[str, RunLog] = {}  # by run dir
        self._refused: set[str] = set()  # run dirs that overlap the log dir
        self._accepted: set[str] = set()  # run dirs checked and found apart from it
        self._refused_logdir = False  # the log dir lies inside a run
        self._real_logdir = os.path.realpath(self.logdir)
        self._logdir_lock = layout.LogDirLock(self.logdir)
        self._logdir_error: str | None = None  # why the last pass could not lock the log dir
        self._unreadable: set[tuple[str, str]] = set()  # reported, and still unreadable
        self._pass_started: tuple[float, float] | None = None  # (monotonic, wall) of a pass
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition()  # notified when generation goes up, or on close
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.problems: collections.deque[Problem] = collections.deque(maxlen=200)
        self.last_report: PassReport | None = None
        self.generation = 0  # goes up after every pass that changed something
        self._change_listeners: list[Callable[[], None]] = []
        self.passes = 0
        self.views: tuple[RunView, ...] = ()  # replaced whole after every pass
        self._listeners: list[Callable[[PassReport], None]] = []

    def add_listener(self, callback: Callable[[PassReport], None]) -> None:
        """Call ``callback(report)`` after every pass, in the thread that ran it.
        A failing callback is logged and does not affect the monitor."""
        self._listeners.append(callback)

    # -- passes -----------------------------------------------------------

    def run_once(self) -> None:
        """One pass now (Guild's name for it); see :meth:`run_pass`."""
        self.run_pass()

    def run_pass(self) -> PassReport:
        """One pass now, returning what it did. Passes never overlap: a call made
        while the thread is in a pass waits for it. Raises
        :class:`LogDirLockedError` if another monitor holds the log dir."""
        with self._lock:
            started = time.monotonic()
            self._pass_started = (started, time.time())
            report = PassReport()
            try:
                self._pass(report)
            finally:
                self._pass_started = None
            report.duration = time.monotonic() - started
            report.finished = time.time()
            self.passes += 1
            self.last_report = report
            if report.changed:
                with self._changed:
                    self.generation += 1
                    self._changed.notify_all()
        for callback in list(self._listeners):
            try:
                callback(report)
            except Exception:
                log.warning("A pass listener failed", exc_info=True)
        return report

    def _pass(self, report: PassReport) -> None:
        listing = self._listing(report)
        if listing is None:  # nothing known about any run: everything stays as it was
            report.runs = len(self.views)
            return
        runs, kept = listing
        if self._refused_logdir:
            return
        self.acquire_logdir()
        if kept:  # the kept runs among the listed ones, newest first
            runs = sorted([*runs, *kept], key=newest_first_key, reverse=True)
        names = assign_names(runs, self._run_name_cb)
        current = {run.dir for run in runs}
        for run_dir in [d for d in self._logs if d not in current]:
            report.runs_removed.append(os.path.basename(self._logs.pop(run_dir).log_dir))
        for run in runs:  # renamed runs (a new label) keep their log dir's contents
            run_log = self._logs.get(run.dir)
            target = os.path.join(self.logdir, names[run.dir])
            if run_log is not None and run_log.log_dir != target:
                layout.safe_remove(target)
                run_log.move_to(target)
        wanted = set(names.values())
        for name in os.listdir(self.logdir):
            if name not in wanted:
                layout.safe_remove(os.path.join(self.logdir, name))
        kept_dirs = {run.dir for run in kept}
        for run in runs:
            if run.dir in kept_dirs:  # not seen this pass: left as it was
                report.images += self._logs[run.dir].summaries.image_count
                continue
            name = names[run.dir]
            run_log = self._logs.get(run.dir)
            if run_log is None:
                log_dir = os.path.join(self.logdir, name)
                run_log = RunLog(
                    run,
                    log_dir,
                    self.max_images_per_run,
                    self.max_revisions_per_image,
                    self.max_image_bytes,
                    revision_steps=self.revision_steps,
                )
                self._logs[run.dir] = run_log
                report.runs_added.append(name)
            elif run_log.run != run:
                report.runs_changed.append(name)
            self._sync(run, name, run_log, report)
        report.runs = len(runs)
        self.views = tuple(self._logs[run.dir].view(names[run.dir]) for run in runs)

    def _listing(self, report: PassReport) -> tuple[list[Run], list[Run]] | None:
        """The runs listed (and accepted), and the known runs missing from the listing
        that it could not see; ``None`` if the callback raised."""
        try:
            listed = self._list_runs()
        except Exception as e:
            message = f"listing runs failed: {type(e).__name__}: {e}; the runs known are kept"
            if ("", message) not in self._unreadable:
                log.warning("Listing runs failed", exc_info=True)
            self._report_unreadable(report, [Unreadable("", message)])
            return None
        unreadable: list[Unreadable] = list(getattr(listed, "unreadable", ()))
        self._report_unreadable(report, unreadable)
        runs = [run for run in listed if self._acceptable(run, report)]
        listed_dirs = {run.dir for run in runs}
        kept = [
            run_log.run
            for run_dir, run_log in self._logs.items()
            if run_dir not in listed_dirs and any(u.hides(run_log.run) for u in unreadable)
        ]
        return runs, kept

    def _report_unreadable(self, report: PassReport, unreadable: list[Unreadable]) -> None:
        """Report each unreadable path once, until it has been read again."""
        current = {(u.path, u.message) for u in unreadable}
        for path, message in sorted(current - self._unreadable):
            if path:
                message = f"{message}; skipped, and runs there are kept as they were"
            self._problem(report, "", path, message)
        self._unreadable = current

    def _sync(self, run: Run, name: str, run_log: RunLog, report: PassReport) -> None:
        def problem(path: str, message: str) -> None:
            self._problem(report, name, path, message)

        try:
            written = run_log.sync(run, problem, images=self.log_images, hparams=self.log_hparams)
            for path in written:
                report.written.append((name, path))
        except FileNotFoundError:
            if os.path.isdir(run.dir):
                log.warning("Run %r: a file vanished during the pass", name, exc_info=True)
            else:
                log.info("Run %r vanished during the pass", name)
        except Exception as e:
            log.warning("Run %r: pass failed", name, exc_info=True)
            problem("", f"pass failed: {type(e).__name__}: {e}")
        report.images += run_log.summaries.image_count

    def _acceptable(self, run: Run, report: PassReport) -> bool:
        """Refuse a run that contains the log dir (mirroring it would write inside the
        run: then nothing at all is written) or lies inside it (the mirror would
        mirror itself). Each refusal is reported once."""
        if run.dir in self._accepted:
            return True
        if run.dir in self._refused:
            return False
        real = os.path.realpath(run.dir)
        common = os.path.commonpath([real, self._real_logdir])
        if common == real:
            self._refused_logdir = True
            message = f"the log dir {self.logdir} is inside this run; nothing is written"
        elif common == self._real_logdir:
            message = f"not monitored: the run lies inside the log dir {self.logdir}"
        else:
            self._accepted.add(run.dir)
            return True
        self._refused.add(run.dir)
        self._problem(report, run.id, "", message)
        return False

    def _problem(self, report: PassReport, run: str, path: str, message: str) -> None:
        log.warning("Problem: run %r, path %r: %r", run, path, message)
        item = Problem(time.time(), run, path, message)
        self.problems.append(item)
        report.problems.append(item)

    def mark_changed(self) -> int:
        """Count a change made outside a pass (which runs TensorBoard shows), so that
        clients following :attr:`generation` look again; returns the new generation.
        Wakes :meth:`wait_for_change` and the change listeners."""
        with self._changed:
            self.generation += 1
            self._changed.notify_all()
            generation = self.generation
        for callback in list(self._change_listeners):
            try:
                callback()
            except Exception:
                log.warning("A change listener failed", exc_info=True)
        return generation

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` in the thread that called :meth:`mark_changed`."""
        self._change_listeners.append(callback)

    def wait_for_change(self, since: int, timeout: float | None = None) -> int:
        """Block until :attr:`generation` is past ``since`` (at once if it already is),
        the monitor is closed, or ``timeout`` seconds passed; returns the generation
        then. For threads: an event loop is woken by :meth:`add_listener` instead."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation > since or self._closed, timeout)
            return self.generation

    # -- the thread -------------------------------------------------------

    def start(self) -> None:
        """Run passes every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="guildimg-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, wait (at most ``timeout`` seconds) for its pass in
        progress to end, and let the log dir's lock go (a later pass takes it again)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self._logdir_lock.release()

    def close(self, timeout: float | None = 5.0) -> None:
        """:meth:`stop` for good: the log dir is let go and never taken (nor made)
        again, so it can be renamed or removed; later passes raise RuntimeError."""
        self._closed = True
        with self._changed:
            self._changed.notify_all()  # wake every wait_for_change() now
        self.stop(timeout)

    def acquire_logdir(self) -> None:
        """Make the log dir and take its exclusive lock; idempotent. Every pass calls
        it first. Raises :class:`LogDirLockedError` (naming the holder's pid where
        the system tells it) if another monitor holds it."""
        if self._closed:
            raise RuntimeError(f"the monitor of {self.logdir!r} is closed")
        os.makedirs(self.logdir, exist_ok=True)
        try:
            self._logdir_lock.acquire()
        except LogDirLockedError as e:
            self._logdir_error = str(e)
            raise
        self._logdir_error = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stall_bound(self) -> float:
        """Seconds after which a pass still running counts as stalled."""
        if self.stall_after is not None:
            return self.stall_after
        return max(30.0, 10 * self.interval)

    def status(self) -> dict[str, Any]:
        """JSON-able state: the thread, the pass in progress (``pass_started``,
        ``pass_running_for``, ``stalled`` once it runs past :attr:`stall_bound`),
        ``logdir_error`` (why the log dir could not be taken, else ``None``), the
        last pass and the latest problems."""
        report = self.last_report
        started = self._pass_started
        running_for = None if started is None else time.monotonic() - started[0]
        return {
            "running": self.running,
            "logdir": self.logdir,
            "interval": self.interval,
            "passes": self.passes,
            "generation": self.generation,
            "last_pass": None if report is None else round(report.finished, 3),
            "last_pass_duration": None if report is None else round(report.duration, 4),
            "runs": 0 if report is None else report.runs,
            "images": 0 if report is None else report.images,
            "pass_started": None if started is None else round(started[1], 3),
            "pass_running_for": None if running_for is None else round(running_for, 3),
            "stalled": running_for is not None and running_for > self.stall_bound,
            "logdir_error": self._logdir_error,
            "problems": [
                {"time": round(p.time, 3), "run": p.run, "path": p.path, "message": p.message}
                for p in list(self.problems)[-20:]
            ],
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except LogDirLockedError as e:
                # Capture stays off while another monitor holds the log dir; it
                # starts by itself once that one lets go. Said once, not every pass.
                if not any(p.message == str(e) for p in self.problems):
                    log.warning("Not capturing", exc_info=True)
                    self.problems.append(Problem(time.time(), "", "", str(e)))
            except Exception as e:
                # One bad pass (an unreadable log dir, a failing source) must not
                # end monitoring: the next pass may well succeed.
                log.exception("Monitor pass failed; trying again in %s s", self.interval)
                self.problems.append(Problem(time.time(), "", "", f"pass failed: {e!r}"))
            self._stop.wait(self.interval)
