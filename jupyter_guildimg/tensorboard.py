"""The runs monitor: keeps a TensorBoard log dir in step with a set of runs.

Each pass lists the runs, removes what belongs to runs that are gone, and for
each run brings its mirror (symlinks), image summaries and hparams up to date.
A pass costs one ``stat`` per directory and per image of every run, plus real
work only for what changed. A failure in one run is reported and the pass goes
on; a failure of a whole pass is logged and the thread goes on.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _fs
from .hparams import session_end_events, session_start_events
from .mirror import IMAGES_DIR, RunMirror
from .naming import assign_names
from .runs import FINAL_STATUSES, Run
from .summaries import ImageSummaries, Revision
from .tfevent import write_event_file

__all__ = [
    "DEFAULT_INTERVAL",
    "MIN_INTERVAL",
    "PassReport",
    "Problem",
    "RunView",
    "RunsMonitor",
    "setup_logging",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.5
HPARAMS_FILE = "events.out.tfevents.0000000000.hparams"
# Sorts after every event file a run writes itself, so TensorBoard reads it last.
END_FILE = "events.out.tfevents.9999999999.time"


def setup_logging() -> None:
    """Quiet TensorBoard's own chatty loggers; keep this package's warnings visible."""
    for name in ("tensorboard", "absl", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)
    package = logging.getLogger(__name__.rpartition(".")[0])
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)


@dataclass(frozen=True)
class Problem:
    """Something the monitor could not do. ``run`` is the run's log dir name and
    ``path`` run-relative ("" for the run as a whole)."""

    time: float
    run: str
    path: str
    message: str


@dataclass
class PassReport:
    """What one pass did."""

    finished: float = 0.0
    duration: float = 0.0
    runs: int = 0
    images: int = 0
    written: list[tuple[str, str]] = field(default_factory=list)  # (run name, image path)
    runs_added: list[str] = field(default_factory=list)
    runs_removed: list[str] = field(default_factory=list)
    runs_changed: list[str] = field(default_factory=list)  # status, label, times…
    problems: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.runs_added or self.runs_removed or self.runs_changed)

    def to_json(self) -> dict[str, Any]:
        """The report as the REST API's ``POST refresh`` answers it."""
        return {
            "duration": round(self.duration, 4),
            "runs": self.runs,
            "images": self.images,
            "written": [{"run": run, "path": path} for run, path in self.written],
            "runs_added": self.runs_added,
            "runs_removed": self.runs_removed,
            "runs_changed": self.runs_changed,
            "problems": [
                {"run": p.run, "path": p.path, "message": p.message} for p in self.problems
            ],
        }


@dataclass(frozen=True)
class RunView:
    """A run as the monitor last left it, safe to read from any thread.
    ``images`` maps run-relative image paths to their revisions, oldest first."""

    run: Run
    name: str
    log_dir: str
    images: Mapping[str, tuple[Revision, ...]]

    @property
    def images_dir(self) -> str:
        return os.path.join(self.log_dir, IMAGES_DIR)


class _RunLog:
    """Everything the monitor keeps for one run."""

    def __init__(self, run: Run, log_dir: str, max_images: int | None) -> None:
        self.log_dir = log_dir
        self.mirror = RunMirror(run.dir, log_dir, run.sourcecode)
        self.summaries = ImageSummaries(run.dir, os.path.join(log_dir, IMAGES_DIR), max_images)
        self.wrote_start = self.wrote_end = None  # unknown until the first sync
        self.run = run
        self._view: RunView | None = None  # rebuilt only after a change

    def move_to(self, log_dir: str) -> None:
        os.replace(self.log_dir, log_dir)
        self.log_dir = self.mirror.log_dir = log_dir
        self.summaries.images_dir = os.path.join(log_dir, IMAGES_DIR)
        self._view = None

    def view(self, name: str) -> RunView:
        if self._view is None:
            images = self.summaries.history() if self.summaries.revisions else {}
            self._view = RunView(self.run, name, self.log_dir, images)
        return self._view

    def sync(self, run: Run, monitor: RunsMonitor, report: Callable[[str, str], None]) -> list[str]:
        if run != self.run:
            self._view = None
        self.run = run
        self.mirror.sourcecode = run.sourcecode
        changes = self.mirror.scan(report)
        written: list[str] = []
        if monitor.log_images:
            self.summaries.remove(changes.removed_images)
            self.summaries.add(changes.added_images)
            written = self.summaries.update(report)
        if monitor.log_hparams and run.kind == "guild":
            self._sync_hparams(run)
        if written:
            self._view = None
        return written

    def _sync_hparams(self, run: Run) -> None:
        if self.wrote_start is None:
            self.wrote_start = os.path.exists(os.path.join(self.log_dir, HPARAMS_FILE))
            self.wrote_end = os.path.exists(os.path.join(self.log_dir, END_FILE))
        if not self.wrote_start:
            os.makedirs(self.log_dir, exist_ok=True)
            group = f"{run.short_id} {run.operation}".strip()
            events = session_start_events(run, group)
            write_event_file(os.path.join(self.log_dir, HPARAMS_FILE), events)
            self.wrote_start = True
        if not self.wrote_end and run.status in FINAL_STATUSES:
            write_event_file(os.path.join(self.log_dir, END_FILE), session_end_events(run))
            self.wrote_end = True


class RunsMonitor:
    """Mirror runs into ``logdir`` with image summaries and hparams.

    ``list_runs_cb`` returns the current :class:`~jupyter_guildimg.runs.Run`
    list; ``run_name_cb`` may name runs (names are made safe and unique either
    way). ``interval`` (seconds, at least 0.5) paces the thread started by
    :meth:`start`. At most ``max_images_per_run`` distinct images are summarized
    per run (``None``: no cap). The monitor writes only inside ``logdir`` and
    only ever deletes symlinks and files it writes itself.
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
    ) -> None:
        interval = DEFAULT_INTERVAL if interval is None else float(interval)
        if interval < MIN_INTERVAL:
            raise ValueError(f"interval must be at least {MIN_INTERVAL} s, got {interval}")
        self.logdir = os.path.abspath(os.fspath(logdir))
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise NotADirectoryError(f"log dir {self.logdir!r} is not a directory")
        self.interval = interval
        self.log_images = log_images
        self.log_hparams = log_hparams
        self.max_images_per_run = max_images_per_run
        self._list_runs = list_runs_cb
        self._run_name_cb = run_name_cb
        self._logs: dict[str, _RunLog] = {}  # by run dir
        self._refused: set[str] = set()  # run dirs that overlap the log dir
        self._accepted: set[str] = set()  # run dirs checked and found apart from it
        self._refused_logdir = False  # the log dir lies inside a run
        self._real_logdir = os.path.realpath(self.logdir)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.problems: collections.deque[Problem] = collections.deque(maxlen=200)
        self.last_report: PassReport | None = None
        self.generation = 0  # goes up after every pass that changed something
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
        while the thread is in a pass waits for it."""
        with self._lock:
            started = time.monotonic()
            report = PassReport()
            self._pass(report)
            report.duration = time.monotonic() - started
            report.finished = time.time()
            self.passes += 1
            if report.changed:
                self.generation += 1
            self.last_report = report
        for callback in list(self._listeners):
            try:
                callback(report)
            except Exception:
                log.warning("A pass listener failed", exc_info=True)
        return report

    def _pass(self, report: PassReport) -> None:
        runs = [run for run in self._list_runs() if self._acceptable(run, report)]
        if self._refused_logdir:
            return
        os.makedirs(self.logdir, exist_ok=True)
        names = assign_names(runs, self._run_name_cb)
        current = {run.dir for run in runs}
        for run_dir in [d for d in self._logs if d not in current]:
            report.runs_removed.append(os.path.basename(self._logs.pop(run_dir).log_dir))
        for run in runs:  # renamed runs (a new label) keep their log dir's contents
            run_log = self._logs.get(run.dir)
            target = os.path.join(self.logdir, names[run.dir])
            if run_log is not None and run_log.log_dir != target:
                _fs.safe_remove(target)
                run_log.move_to(target)
        wanted = set(names.values())
        for name in os.listdir(self.logdir):
            if name not in wanted:
                _fs.safe_remove(os.path.join(self.logdir, name))
        for run in runs:
            name = names[run.dir]
            run_log = self._logs.get(run.dir)
            if run_log is None:
                run_log = self._logs[run.dir] = _RunLog(
                    run, os.path.join(self.logdir, name), self.max_images_per_run
                )
                report.runs_added.append(name)
            elif run_log.run != run:
                report.runs_changed.append(name)
            self._sync(run, name, run_log, report)
        report.runs = len(runs)
        self.views = tuple(self._logs[run.dir].view(names[run.dir]) for run in runs)

    def _sync(self, run: Run, name: str, run_log: _RunLog, report: PassReport) -> None:
        def problem(path: str, message: str) -> None:
            self._problem(report, name, path, message)

        try:
            for path in run_log.sync(run, self, problem):
                report.written.append((name, path))
        except FileNotFoundError:
            if os.path.isdir(run.dir):
                log.warning("Run %s: a file vanished during the pass", name, exc_info=True)
            else:
                log.info("Run %s vanished during the pass", name)
        except Exception as e:
            log.warning("Run %s: pass failed", name, exc_info=True)
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
        log.warning("Run %s: %s%s", run, f"{path}: " if path else "", message)
        item = Problem(time.time(), run, path, message)
        self.problems.append(item)
        report.problems.append(item)

    # -- the thread -------------------------------------------------------

    def start(self) -> None:
        """Run passes every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="guildimg-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for its pass in progress to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """JSON-able state: the thread, the last pass and the latest problems."""
        report = self.last_report
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
            "problems": [
                {"time": round(p.time, 3), "run": p.run, "path": p.path, "message": p.message}
                for p in list(self.problems)[-20:]
            ],
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except Exception as e:
                # One bad pass (an unreadable log dir, a failing source) must not
                # end monitoring: the next pass may well succeed.
                log.exception("Monitor pass failed; trying again in %s s", self.interval)
                self.problems.append(Problem(time.time(), "", "", f"pass failed: {e!r}"))
            self._stop.wait(self.interval)
