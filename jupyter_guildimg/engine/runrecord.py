"""What every source of runs hands out: :class:`Run` records, a listing of them
(:class:`RunList`) with the paths it could not read (:class:`Unreadable`), and the
:class:`RunSource` interface the monitor and the server list runs through. The
sources themselves (Guild homes, plain runs directories) are in :mod:`.runs`, which
also exports these names."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FINAL_STATUSES",
    "LISTING_TICK_EVERY",
    "CombinedSources",
    "Run",
    "RunList",
    "RunSource",
    "Unreadable",
    "combine_sources",
    "listing_tick",
    "newest_first_key",
    "sources_of",
    "tick_listing",
]

log = logging.getLogger(__name__)

#: Statuses of a run that has ended.
FINAL_STATUSES = frozenset({"completed", "error", "terminated"})

#: Set by a caller that acts while a long listing runs (the monitor syncs the runs
#: that changed meanwhile); a source's listing calls it now and then, only from the
#: thread that called ``list_runs``. ``None`` (the default) for everyone else.
listing_tick: ContextVar[Callable[[], None] | None] = ContextVar(
    "guildimg_listing_tick", default=None
)
#: A listing calls ``listing_tick`` every this many runs it reads.
LISTING_TICK_EVERY = 64


def tick_listing(read: int) -> None:
    """For a source's listing, having read its ``read``-th run: calls
    :data:`listing_tick` every :data:`LISTING_TICK_EVERY` runs, if set in this
    thread's context (reader threads do not inherit it, so they never tick)."""
    if read % LISTING_TICK_EVERY == 0:
        tick = listing_tick.get()
        if tick is not None:
            tick()


@dataclass(frozen=True)
class Run:
    """One run as a source sees it. ``dir`` (absolute) identifies it uniquely.

    Times are seconds since the epoch (``None`` when unknown). ``operation`` is
    ``"[model:]op"`` for Guild runs and ``""`` for plain runs; ``short_id`` is the
    first 8 characters of a Guild id, or the whole id (a relative path) of a plain
    run. ``sourcecode`` lists run-relative paths that are source code, not output.
    """

    id: str
    dir: str
    operation: str = ""
    label: str = ""
    status: str = "unknown"
    started: float | None = None
    stopped: float | None = None
    flags: Mapping[str, Any] = field(default_factory=dict)
    short_id: str = ""
    source: str = ""
    kind: str = "guild"
    sourcecode: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.short_id:
            object.__setattr__(self, "short_id", self.id[:8] if self.kind == "guild" else self.id)


@dataclass(frozen=True)
class Unreadable:
    """A path (absolute) that could not be read while listing runs, and why.

    A run missing from a listing that reports it may be hidden by it rather than
    gone: see :meth:`hides`."""

    path: str
    message: str

    def hides(self, run: Run) -> bool:
        """Whether ``run`` may be missing from the listing because of this path: the
        path is the run's source, or lies at, above or below the run's directory."""
        if run.source == self.path or run.dir == self.path:
            return True
        return _is_below(run.dir, self.path) or _is_below(self.path, run.dir)


def _is_below(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip(os.sep) + os.sep)


class RunList(list[Run]):
    """What a listing found: the runs (it is a list of them) and ``unreadable``, the
    paths it could not read. Runs below an unreadable path are unknown, not gone.

    Sources return one from ``list_runs()``; a plain list from any other callable
    means everything was read."""

    def __init__(self, runs: Iterable[Run] = (), unreadable: Iterable[Unreadable] = ()) -> None:
        super().__init__(runs)
        self.unreadable: list[Unreadable] = list(unreadable)


class RunSource:
    """What the monitor and the server need from a source of runs.

    ``list_runs()`` does not raise for what it cannot read: an entry that cannot
    be read is skipped and named in the result's ``unreadable``, and so is the
    source's own directory when it cannot be listed at all (but exists)."""

    path: str

    def list_runs(self) -> RunList:  # pragma: no cover - interface
        raise NotImplementedError

    def read_run(self, run_dir: str) -> Run | None:
        """The run at ``run_dir`` as :meth:`list_runs` would list it now, or ``None``
        if there is none there (gone, not a run, or not this source's). Raises
        :class:`OSError` when the run cannot be read (it is then unknown, not gone).

        Sources read just that run; this default lists them all."""
        return next((run for run in self.list_runs() if run.dir == run_dir), None)

    def start_times(self, newest: int | None = None) -> dict[str, float] | None:
        """Each run dir of this source and its start time, read far more cheaply than
        :meth:`list_runs` (one small file a run, not the whole run): which runs are
        the newest, before they are read. With ``newest``, a source may leave out
        runs it can tell are not among the ``newest`` latest. ``None`` when this
        source cannot tell (this default). A dir named may turn out not to be a run:
        :meth:`read_run` decides."""
        return None

    def locate(self, path: str) -> str | None:
        """The directory of the run of this source that ``path`` (absolute) is, or
        lies in, possibly a run not listed yet; ``None`` when it is none of this
        source's, or cannot be told (this default). Reads the disk as little as it
        can; :meth:`read_run` says whether a run is really there."""
        return None

    @property
    def watch_root(self) -> str:
        """The directory where this source's new runs appear (what a watcher watches
        for them): the source's own directory unless a source says otherwise."""
        return self.path


def newest_first_key(run: Run) -> tuple[bool, float, str]:
    """The order of every run listing, newest first when sorted with ``reverse=True``:
    by start time (runs without one last), then by id."""
    return (run.started is not None, run.started or 0.0, run.id)


class CombinedSources:
    """A ``list_runs`` callback over several sources (:func:`combine_sources`), that
    also hands its :attr:`sources` to whoever can do better than listing them all (the
    monitor's targeted passes). ``sources`` may be replaced at any time."""

    def __init__(self, sources: Iterable[RunSource]) -> None:
        self.sources: Sequence[RunSource] = list(sources)
        self._failing: set[str] = set()

    def __repr__(self) -> str:
        return f"CombinedSources({list(self.sources)!r})"

    def __call__(self) -> RunList:
        """Every source's runs, newest first. A source whose ``list_runs()`` raises
        lists nothing and is named in the result's ``unreadable`` (its runs are
        unknown, not gone); the others still list. Its traceback is logged the first
        time it fails in a row."""
        listing = RunList()
        for source in list(self.sources):
            try:
                found = source.list_runs()
            except Exception as e:
                failing = source.path in self._failing
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "Listing runs of %r failed",
                    source,
                    exc_info=True,
                )
                self._failing.add(source.path)
                message = f"listing failed: {type(e).__name__}: {e}"
                listing.unreadable.append(Unreadable(source.path, message))
                continue
            self._failing.discard(source.path)
            listing.extend(found)
            listing.unreadable.extend(getattr(found, "unreadable", ()))
        listing.sort(key=newest_first_key, reverse=True)
        return listing


def combine_sources(sources: Iterable[RunSource]) -> CombinedSources:
    """A ``list_runs`` callback over several sources: see :class:`CombinedSources`."""
    return CombinedSources(sources)


def sources_of(list_runs: object) -> Sequence[RunSource] | None:
    """The sources behind a ``list_runs`` callback, when it tells: a
    :class:`CombinedSources` (or anything with a ``sources`` attribute), or a
    source's bound ``list_runs``; ``None`` for any other callable (a plain function,
    Guild's own callbacks): the monitor then lists everything on every pass."""
    sources = getattr(list_runs, "sources", None)
    if sources is not None:
        return list(sources)
    owner = getattr(list_runs, "__self__", None)
    if isinstance(owner, RunSource):
        return [owner]
    return None
