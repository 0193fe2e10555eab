"""What the monitor keeps and hands out: one run's part of the log dir (its
mirror, image summaries and hparams files: :class:`RunLog`), the read-only view
of it (:class:`RunView`), and what a pass did (:class:`PassReport`,
:class:`Problem`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import rest
from .hparams import session_end_events, session_start_events
from .layout import END_FILE, HPARAMS_FILE, IMAGES_DIR
from .mirror import RunMirror
from .runs import FINAL_STATUSES, Run
from .summaries import ImageSummaries, Revision
from .tfevent import write_event_file

# END_FILE and HPARAMS_FILE live in .layout; importable from here too.
__all__ = [
    "END_FILE",
    "HPARAMS_FILE",
    "ChangeCount",
    "PassReport",
    "Problem",
    "RunLog",
    "RunLogs",
    "RunView",
    "sync_run",
]

log = logging.getLogger(__name__)


class ChangeCount:
    """The monitor's one change counter (its ``generation``): :meth:`bump` raises it
    and wakes the threads in :meth:`wait`; :meth:`close` wakes them for good."""

    def __init__(self) -> None:
        self.value = 0
        self.closed = False
        self._cond = threading.Condition()
        self.listeners: list[Callable[[], None]] = []  # called by bump(notify=True)

    def bump(self, notify: bool = False) -> int:
        """Count a change; returns the new value. With ``notify``, the listeners are
        called (in this thread; a failing one is logged)."""
        with self._cond:
            self.value += 1
            self._cond.notify_all()
            value = self.value
        for callback in list(self.listeners) if notify else ():
            try:
                callback()
            except Exception:
                log.warning("A change listener failed", exc_info=True)
        return value

    def wait(self, since: int, timeout: float | None = None) -> int:
        """Block until the value is past ``since``, :meth:`close` or ``timeout``."""
        with self._cond:
            self._cond.wait_for(lambda: self.value > since or self.closed, timeout)
            return self.value

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass(frozen=True)
class Problem:
    """Something the monitor could not do. ``run`` is the run's log dir name and
    ``path`` run-relative ("" for the run as a whole). ``run`` is "" for what no
    run owns: ``path`` is then absolute (what a listing could not read), or ""
    (the listing or the pass as a whole)."""

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

    def to_json(self) -> rest.RefreshReport:
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
    ``images`` maps run-relative image paths to their revisions, oldest first;
    ``dropped`` maps image paths to how many of their oldest revisions were removed
    under ``max_revisions_per_image`` (by this monitor, since it started)."""

    run: Run
    name: str
    log_dir: str
    images: Mapping[str, tuple[Revision, ...]]
    dropped: Mapping[str, int] = field(default_factory=dict)

    @property
    def images_dir(self) -> str:
        return os.path.join(self.log_dir, IMAGES_DIR)


class RunLog:
    """Everything the monitor keeps for one run: its log dir, mirror, image summaries
    and hparams files, and the view of it last handed out. ``revision_steps``: see
    :class:`~.summaries.ImageSummaries`."""

    def __init__(
        self,
        run: Run,
        log_dir: str,
        max_images: int | None,
        max_revisions: int | None,
        max_image_bytes: int | None,
        *,
        revision_steps: bool = False,
    ) -> None:
        self.log_dir = log_dir
        self.mirror = RunMirror(run.dir, log_dir, run.sourcecode)
        self.summaries = ImageSummaries(
            run.dir,
            os.path.join(log_dir, IMAGES_DIR),
            max_images,
            max_revisions=max_revisions,
            max_image_bytes=max_image_bytes,
            revision_steps=revision_steps,
        )
        # Whether the hparams files exist: unknown (None) until the first sync.
        self.wrote_start: bool | None = None
        self.wrote_end: bool | None = None
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
            self._view = RunView(self.run, name, self.log_dir, images, self.summaries.dropped())
        return self._view

    def sync(
        self, run: Run, report: Callable[[str, str], None], *, images: bool, hparams: bool
    ) -> list[str]:
        """Bring the run's log dir up to date; returns the image paths written."""
        if run != self.run:
            self._view = None
        self.run = run
        self.mirror.sourcecode = run.sourcecode
        changes = self.mirror.scan(report)
        written: list[str] = []
        if images:
            self.summaries.remove(changes.removed_images)
            self.summaries.add(changes.added_images)
            written = self.summaries.update(report)
        if hparams and run.kind == "guild":
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


def sync_run(
    run_log: RunLog,
    run: Run,
    name: str,
    problem: Callable[[str, str], None],
    *,
    images: bool,
    hparams: bool,
) -> list[str]:
    """Bring ``run_log`` up to date with ``run`` (named ``name`` in logs); returns the
    image paths written. Never raises for the run's own faults: a run that vanished
    during the sync is logged, any other failure is logged and reported to
    ``problem(path, message)`` (``path`` "": the run as a whole), and the monitor
    goes on with its other runs. The same in the server process and in an index
    child (:mod:`.indexchild`)."""
    try:
        return run_log.sync(run, problem, images=images, hparams=hparams)
    except FileNotFoundError:
        if os.path.isdir(run.dir):
            log.warning("Run %r: a file vanished during the pass", name, exc_info=True)
        else:
            log.info("Run %r vanished during the pass", name)
    except Exception as e:
        log.warning("Run %r: pass failed", name, exc_info=True)
        problem("", f"pass failed: {type(e).__name__}: {e}")
    return []


class RunLogs:
    """What a monitor keeps between passes: ``logs``, each run's log by run dir;
    ``views``, newest first, replaced whole by each pass (and each batch it
    publishes); and the last whole pass's ``names`` (run dir → log dir name) and
    ``positions`` (run dir → place in ``views``), which a targeted pass changing
    neither reuses."""

    def __init__(self) -> None:
        self.logs: dict[str, RunLog] = {}
        self.views: tuple[RunView, ...] = ()
        self.names: dict[str, str] = {}
        self.positions: dict[str, int] = {}
        # Images of every run's log as the last pass left them; None: to be counted.
        self.image_total: int | None = 0
        # known_runs() kept up to date by the dirs a pass touched, not rebuilt: at
        # 100,000 runs, rebuilding it cost a targeted pass more than its own work.
        self._lock = threading.Lock()
        self._known: dict[str, Run] = {}
        self._touched: set[str] | None = set()  # None: every run may have changed

    def touch(self, run_dir: str | None = None) -> None:
        """Say that the log of ``run_dir`` (of every run, when ``None``) was added,
        removed or synced."""
        with self._lock:
            if run_dir is None:
                self._touched = None
            elif self._touched is not None:
                self._touched.add(run_dir)

    def known_runs(self) -> Mapping[str, Run]:
        """The runs known now, by dir (a snapshot)."""
        with self._lock:
            touched, self._touched = self._touched, set()
            if touched is None:
                self._known = {run_dir: log.run for run_dir, log in list(self.logs.items())}
            else:
                for run_dir in touched:
                    run_log = self.logs.get(run_dir)
                    if run_log is None:
                        self._known.pop(run_dir, None)
                    else:
                        self._known[run_dir] = run_log.run
            return self._known.copy()
