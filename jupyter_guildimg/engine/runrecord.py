"""What every source of runs hands out: :class:`Run` records, a listing of them
(:class:`RunList`) with the paths it could not read (:class:`Unreadable`), and the
:class:`RunSource` interface the monitor and the server list runs through. The
sources themselves (Guild homes, plain runs directories) are in :mod:`.runs`, which
also exports these names."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINAL_STATUSES", "Run", "RunList", "RunSource", "Unreadable", "newest_first_key"]

#: Statuses of a run that has ended.
FINAL_STATUSES = frozenset({"completed", "error", "terminated"})


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


def newest_first_key(run: Run) -> tuple[bool, float, str]:
    """The order of every run listing, newest first when sorted with ``reverse=True``:
    by start time (runs without one last), then by id."""
    return (run.started is not None, run.started or 0.0, run.id)
