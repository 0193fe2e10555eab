"""Which runs a monitor's pass sees, and which runs deserve a watch.

A full pass lists every run; runs the listing could not see (an unreadable path
at, above or below them; the listing callback raised) are kept as they were, and
what could not be read is reported once. A targeted pass reads just the runs
whose files changed, through their source; a changed path belongs to the nearest
known run dir above it, else to the run its source locates there (a new run). A
run is gone only when its dir is (ENOENT). Runs that are running, or that ended
or changed within :data:`RECENT` seconds, are *active*: the watcher watches them,
and the others only through the reconciling passes. A full pass meeting many new
runs indexes them in batches (:class:`IndexProgress`).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

from .. import rest
from .runrecord import Run, RunSource, Unreadable

log = logging.getLogger(__name__)

#: What a pass sees: the runs read (and accepted), and the known runs kept as they were.
Seen = tuple[list[Run], Collection[Run]]


class _KeptRuns(Collection[Run]):
    """The known runs but those at ``skip``, gone through only when iterated: a
    targeted pass that keeps every run in place needs just how many there are."""

    def __init__(self, known: Mapping[str, Run], skip: set[str]) -> None:
        self._known = known
        self._skip = skip
        self._size = len(known) - sum(run_dir in known for run_dir in skip)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Run]:
        return (run for run_dir, run in self._known.items() if run_dir not in self._skip)

    def __contains__(self, run: object) -> bool:
        return isinstance(run, Run) and run.dir not in self._skip and run.dir in self._known


__all__ = [
    "BATCH_SECONDS",
    "FIRST_BATCH",
    "MAX_BATCH",
    "MAX_BATCH_SECONDS",
    "RECENT",
    "IndexProgress",
    "LogdirOverlap",
    "RunTargets",
    "Seen",
]

#: Seconds a run stays active after it last changed (or ended).
RECENT = 600.0


class RunTargets:
    """What a monitor remembers between passes: the paths reported unreadable, when
    each run last changed, and the dirs where a run is being created (seen, not a
    run yet). Used under the monitor's pass lock, except :meth:`active` and
    :meth:`run_dirs_for`.

    ``accept(run)`` says whether the monitor takes a run; ``problem(path, message)``
    reports what no run owns."""

    def __init__(self) -> None:
        self.unreadable: set[tuple[str, str]] = set()  # reported, and still unreadable
        self.last_change: dict[str, float] = {}  # run dir -> when a pass saw it change
        self.pending: dict[str, float] = {}  # dir -> since when a run may appear there
        # Dirs that became active (changed, read, pending) since take_fresh(): what
        # the watch gains between two full computations of active().
        self._fresh: set[str] = set()

    def listing(
        self,
        list_runs: Callable[[], Iterable[Run]],
        known: Mapping[str, Run],
        accept: Callable[[Run], bool],
        problem: Callable[[str, str], None],
    ) -> Seen | None:
        """A full pass's runs: those listed (and accepted), and the known runs missing
        from the listing that it could not see; ``None`` if the callback raised."""
        try:
            listed = list_runs()
        except Exception as e:
            message = f"listing runs failed: {type(e).__name__}: {e}; the runs known are kept"
            if ("", message) not in self.unreadable:
                log.warning("Listing runs failed", exc_info=True)
            self._report_unreadable([Unreadable("", message)], problem)
            return None
        unreadable: list[Unreadable] = list(getattr(listed, "unreadable", ()))
        self._report_unreadable(unreadable, problem)
        runs = [run for run in listed if accept(run)]
        listed_dirs = {run.dir for run in runs}
        kept = [
            run
            for run_dir, run in known.items()
            if run_dir not in listed_dirs and any(u.hides(run) for u in unreadable)
        ]
        return runs, kept

    def _report_unreadable(
        self, unreadable: list[Unreadable], problem: Callable[[str, str], None]
    ) -> None:
        """Report each unreadable path once, until it has been read again."""
        current = {(u.path, u.message) for u in unreadable}
        for path, message in sorted(current - self.unreadable):
            if path:
                message = f"{message}; skipped, and runs there are kept as they were"
            problem(path, message)
        self.unreadable = current

    def targeted(
        self,
        only: Collection[str],
        sources: Sequence[RunSource],
        known: Mapping[str, Run],
        accept: Callable[[Run], bool],
        problem: Callable[[str, str], None],
    ) -> Seen:
        """A targeted pass's runs: those at ``only`` read again (and accepted), and
        every other known run, kept as it was (unless really gone)."""

        def failed(run_dir: str, error: OSError) -> None:
            unreadable = (run_dir, f"cannot read: {error.strerror or error}")
            if unreadable not in self.unreadable:  # said once, until a full pass reads it
                log.warning("Cannot read run %r: %s", run_dir, unreadable[1])
                self.unreadable.add(unreadable)
                problem(*unreadable)

        read, gone = self.reread(only, sources, known, failed)
        return [run for run in read if accept(run)], _KeptRuns(
            known, gone | {run.dir for run in read}
        )

    def changed(self, run_dir: str) -> None:
        """Note that a pass saw ``run_dir`` change (it is active for a while)."""
        self.last_change[run_dir] = time.time()
        self._fresh.add(run_dir)

    def forget(self, run_dir: str) -> None:
        self.last_change.pop(run_dir, None)
        self.pending.pop(run_dir, None)
        self._fresh.discard(run_dir)

    def take_fresh(self) -> set[str]:
        """The dirs that became active since the last call (runs changed or read by a
        pass, dirs where a run is being created), minus those gone since."""
        fresh, self._fresh = self._fresh, set()
        return fresh

    def reread(
        self,
        only: Collection[str],
        sources: Sequence[RunSource],
        known: Mapping[str, Run],
        failed: Callable[[str, OSError], None],
    ) -> tuple[list[Run], set[str]]:
        """The runs at ``only`` read again through their sources, and the known
        run dirs among ``only`` that are really gone. A run that cannot be read is
        passed to ``failed`` and in neither (it is kept as it was); a known dir that
        holds no run now but exists is in neither too (the full pass decides)."""
        now = time.time()
        runs: list[Run] = []
        gone: set[str] = set()
        for run_dir in sorted({os.path.abspath(d) for d in only}):
            source = owner(run_dir, known.get(run_dir), sources)
            try:
                run = None if source is None else source.read_run(run_dir)
                if run is None:
                    os.lstat(run_dir)  # really gone?
            except OSError as e:
                if e.errno == errno.ENOENT:
                    gone.add(run_dir)
                    self.pending.pop(run_dir, None)
                    self._fresh.discard(run_dir)
                else:
                    failed(run_dir, e)
                continue
            if run is not None:
                self.pending.pop(run_dir, None)
                self.last_change[run_dir] = now
                self._fresh.add(run_dir)
                runs.append(run)
            elif source is not None and run_dir not in known:
                self.pending.setdefault(run_dir, now)
                self._fresh.add(run_dir)
        return runs, gone

    def active(self, known: Mapping[str, Run]) -> list[str]:
        """Run dirs worth a watch: running, ended or changed within :data:`RECENT`
        seconds, and dirs where a run is being created (for as long)."""
        now = time.time()
        for run_dir, since in list(self.pending.items()):
            if now - since > RECENT:
                self.pending.pop(run_dir, None)
        active = set(self.pending)
        for run_dir, run in known.items():
            changed = max(self.last_change.get(run_dir, 0.0), run.stopped or 0.0)
            if run.status == "running" or now - changed < RECENT:
                active.add(run_dir)
        return sorted(active)

    def run_dirs_for(
        self, paths: Iterable[str], sources: Sequence[RunSource], known: Collection[str]
    ) -> set[str] | None:
        """The run dirs that changed ``paths`` belong to: the nearest known (or
        pending) run dir above each, else the run its source locates there; ``None``
        when a root itself changed (only a full pass can tell)."""
        pending = set(self.pending)
        roots = {source.watch_root for source in sources}
        found: set[str] = set()
        for path in paths:
            path = os.path.abspath(path)
            if any(root == path or _is_below(root, path) for root in roots):
                return None
            run_dir = _nearest(path, known, pending)
            if run_dir is None:
                run_dir = next(filter(None, (s.locate(path) for s in sources)), None)
            if run_dir is not None:
                found.add(run_dir)
        return found


#: A full pass that meets more runs it has never seen than this indexes them in
#: batches, publishing after each (the first batch is this many runs).
FIRST_BATCH = 100
#: Seconds of indexing after which a batch is published however few runs it holds.
BATCH_SECONDS = 0.5
#: Batches grow (doubling) up to these bounds: fewer, larger publishes on big homes.
MAX_BATCH = 3_200
MAX_BATCH_SECONDS = 4.0


class IndexProgress:
    """How far a monitor's index is, and when a full pass publishes a batch.

    ``found`` is the number of runs the full pass in progress (or the last one)
    listed, ``indexed`` how many of them it has synced so far. A full pass that
    meets more than :data:`FIRST_BATCH` new runs *batches*: :meth:`synced` says
    when to publish (after :data:`FIRST_BATCH` runs or :data:`BATCH_SECONDS` of
    work, then doubling both). The index is ``done`` once a full pass ended and
    none is batching (or while no pass can come: the thread is not running).
    Written under the monitor's pass lock; read from any thread."""

    def __init__(self) -> None:
        self.found = 0
        self.indexed = 0
        self.batching = False  # the full pass in progress publishes in batches
        self.batched = False  # the last full pass did (its duration is no poll's cost)
        self.first_done = False  # a full pass has ended
        self._counting = False
        self._batch = FIRST_BATCH
        self._gap = BATCH_SECONDS
        self._since = 0
        self._last = 0.0
        self.progressed = 0.0  # monotonic time a batching pass last synced a run

    def start(self, found: int, new: int) -> None:
        """A full pass listed ``found`` runs, ``new`` of them never seen."""
        self.batching = new > FIRST_BATCH
        self._counting = self.batching or not self.first_done
        if self._counting:  # a routine pass leaves the last figures as they are
            self.found, self.indexed = found, 0
        self._batch, self._gap, self._since = FIRST_BATCH, BATCH_SECONDS, 0
        self._last = time.monotonic()

    def synced(self) -> bool:
        """Count one more run synced; whether a batch is due (publish now)."""
        if self._counting:
            self.indexed += 1
        if not self.batching:
            return False
        self._since += 1
        now = self.progressed = time.monotonic()
        if self._since < self._batch and now - self._last < self._gap:
            return False
        self._batch = min(2 * self._batch, MAX_BATCH)
        self._gap = min(2 * self._gap, MAX_BATCH_SECONDS)
        self._since, self._last = 0, now
        return True

    def finish(self, found: int) -> None:
        """The full pass ended (or failed), ``found`` runs listed now."""
        self.found = self.indexed = found
        self.batched, self.batching, self._counting = self.batching, False, False
        self.first_done = True

    def state(self, running: bool) -> rest.IndexProgress:
        done = not self.batching and (self.first_done or not running)
        return {"indexed": self.indexed, "found": self.found, "done": done}


class LogdirOverlap:
    """Which runs a monitor refuses for overlapping its log dir: a run that contains
    it (mirroring it would write inside the run: then nothing at all is written,
    ``logdir_inside``) or lies inside it (the mirror would mirror itself)."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.logdir_inside = False  # the log dir lies inside a run
        self._real_logdir = os.path.realpath(logdir)
        self._refused: set[str] = set()  # run dirs that overlap the log dir
        self._accepted: set[str] = set()  # run dirs checked and found apart from it
        self._real_parents: dict[str, str] = {}  # a run's parent dir: its real path

    def _realpath(self, run_dir: str) -> str:
        """``os.path.realpath(run_dir)``, its parent's resolved once for all the runs
        in it (at 10,000 runs, resolving each whole path was a sixth of the monitor
        thread's CPU during a first index: an ``lstat`` for every component)."""
        parent, name = os.path.split(run_dir)
        if not name or name in (os.curdir, os.pardir) or os.path.islink(run_dir):
            return os.path.realpath(run_dir)
        real_parent = self._real_parents.get(parent)
        if real_parent is None:
            real_parent = self._real_parents[parent] = os.path.realpath(parent)
        return os.path.join(real_parent, name)

    def check(self, run: Run) -> tuple[bool, str]:
        """Whether ``run`` is taken, and why not the first time it is refused ("" else)."""
        if run.dir in self._accepted:
            return True, ""
        if run.dir in self._refused:
            return False, ""
        real = self._realpath(run.dir)
        if real == self._real_logdir or _is_below(self._real_logdir, real):
            self.logdir_inside = True
            message = f"the log dir {self.logdir} is inside this run; nothing is written"
        elif _is_below(real, self._real_logdir):
            message = f"not monitored: the run lies inside the log dir {self.logdir}"
        else:
            self._accepted.add(run.dir)
            return True, ""
        self._refused.add(run.dir)
        return False, message


def owner(run_dir: str, known: Run | None, sources: Sequence[RunSource]) -> RunSource | None:
    """The source ``run_dir`` belongs to: a known run's own, else the one locating it."""
    if known is not None:
        for source in sources:
            if source.path == known.source:
                return source
    return next((s for s in sources if s.locate(run_dir) == run_dir), None)


def _is_below(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip(os.sep) + os.sep)


def _nearest(path: str, *dirs: Collection[str]) -> str | None:
    """The nearest dir at or above ``path`` that is in one of ``dirs``."""
    current = path
    while not any(current in d for d in dirs):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return current
