"""Runs and the places they come from: Guild homes and plain runs directories.

Both sources are read straight from disk; Guild is never imported. A source's
``list_runs()`` returns :class:`Run` records, newest first, and is cheap to call
every second: what was read from a run's metadata is cached and re-read only when
the run's ``.guild`` files change.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._guildmeta import guild_status, micros_to_seconds, parse_opref, read_attr, read_sourcecode

__all__ = [
    "FINAL_STATUSES",
    "GuildHome",
    "Run",
    "RunList",
    "RunSource",
    "RunsDir",
    "Unreadable",
    "combine_sources",
    "default_guild_home",
    "open_source",
    "read_guild_run",
]

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"completed", "error", "terminated"})

# Metadata younger than this may still change within the same file-system clock
# tick, so it is never trusted from the cache (the "racy" rule git uses).
_RACY_SECONDS = 2.0


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


def _cannot_read(error: OSError) -> str:
    return f"cannot read: {error.strerror or error}"


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


def default_guild_home() -> str:
    """``$GUILD_HOME`` if set, else ``~/.guild``, as Guild itself resolves it."""
    return os.path.abspath(os.environ.get("GUILD_HOME") or os.path.expanduser("~/.guild"))


def _newest_first(runs: RunList) -> RunList:
    runs.sort(key=lambda run: (run.started is not None, run.started or 0.0, run.id), reverse=True)
    return runs


# ---------------------------------------------------------------------------
# Guild homes


def _stat_mtime(path: str) -> int:
    """The modification time of ``path``, -1 if it does not exist; raises
    :class:`OSError` if it cannot be read."""
    try:
        return os.stat(path).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return -1


def read_guild_run(run_dir: str, source: str = "") -> Run | None:
    """The :class:`Run` of a Guild run directory, or ``None`` if it is not one.
    Raises :class:`OSError` if its ``.guild`` directory exists but cannot be listed."""
    guild_dir = os.path.join(run_dir, ".guild")
    try:
        names = set(os.listdir(guild_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None
    if "opref" not in names:
        return None
    try:
        with open(os.path.join(guild_dir, "opref"), encoding="utf-8") as f:
            operation = parse_opref(f.read().strip())
    except (OSError, UnicodeDecodeError):
        log.warning("Cannot read opref of run %r", run_dir, exc_info=True)
        operation = ""
    attrs = os.path.join(guild_dir, "attrs")
    exit_status = read_attr(attrs, "exit_status")
    flags = read_attr(attrs, "flags")
    label = read_attr(attrs, "label")
    started = read_attr(attrs, "started")
    if started is None:
        started = read_attr(attrs, "initialized")
    return Run(
        id=os.path.basename(run_dir),
        dir=run_dir,
        operation=operation,
        label="" if label is None else str(label),
        status=guild_status(guild_dir, names, exit_status),
        started=micros_to_seconds(started),
        stopped=micros_to_seconds(read_attr(attrs, "stopped")),
        flags=flags if isinstance(flags, dict) else {},
        source=source,
        kind="guild",
        sourcecode=read_sourcecode(guild_dir),
    )


class GuildHome(RunSource):
    """The runs of a Guild home (``<home>/runs/<id>/``), read without Guild.

    A run's metadata is re-read only when its ``.guild`` directory, its
    ``.guild/attrs`` directory or its label changes; a run whose status rests on a
    live ``LOCK`` pid has that pid checked on every call.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path)) if path is not None else default_guild_home()
        self.runs_dir = os.path.join(self.path, "runs")
        self._cache: dict[str, tuple[tuple[int, int, int], Run]] = {}

    def __repr__(self) -> str:
        return f"GuildHome({self.path!r})"

    def list_runs(self) -> RunList:
        try:
            with os.scandir(self.runs_dir) as scan:
                entries = [e for e in scan if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            self._cache.clear()
            return RunList()
        except OSError as e:
            # The runs are unknown, not gone: the cache is kept for the next call.
            return RunList(unreadable=[Unreadable(self.runs_dir, _cannot_read(e))])
        now_ns = time.time_ns()
        cache: dict[str, tuple[tuple[int, int, int], Run]] = {}
        listing = RunList()
        for entry in entries:
            try:
                run = self._read_entry(entry, now_ns, cache)
            except OSError as e:
                where = e.filename if isinstance(e.filename, str) else entry.path
                listing.unreadable.append(Unreadable(where, _cannot_read(e)))
                continue
            if run is not None:
                listing.append(run)
        self._cache = cache
        return _newest_first(listing)

    def _read_entry(
        self,
        entry: os.DirEntry[str],
        now_ns: int,
        cache: dict[str, tuple[tuple[int, int, int], Run]],
    ) -> Run | None:
        guild_dir = os.path.join(entry.path, ".guild")
        signature = (
            _stat_mtime(guild_dir),
            _stat_mtime(os.path.join(guild_dir, "attrs")),
            _stat_mtime(os.path.join(guild_dir, "attrs", "label")),
        )
        if signature[0] < 0:
            return None
        cached = self._cache.get(entry.name)
        # A running run can end without touching its files (killed with its
        # LOCK left behind), so its status is always read afresh.
        if cached is not None and cached[0] == signature and cached[1].status != "running":
            run: Run | None = cached[1]
        else:
            run = read_guild_run(entry.path, self.path)
        if run is not None and now_ns - max(signature) > int(_RACY_SECONDS * 1e9):
            cache[entry.name] = (signature, run)
        return run


# ---------------------------------------------------------------------------
# Plain runs directories


class RunsDir(RunSource):
    """A folder of runs that are not Guild runs (``runs/``, ``lightning_logs/``, ``outputs/``).

    Rules, applied below ``path`` down to ``max_depth`` levels:

    - a directory that holds at least one file is a run; its id is its path
      relative to ``path`` (``"version_0"``, ``"2024-05-01/12-30-00"``);
    - a directory that holds only directories groups runs, and is looked into;
    - hidden entries (``.name``) and symlinked directories are ignored.

    ``started`` is the oldest modification time among the run directory and the
    files directly in it; the run is ``"running"`` while one of those was modified
    within the last ``running_window`` seconds, else ``"completed"`` (and
    ``stopped`` is the newest such time).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        running_window: float = 60.0,
        max_depth: int = 3,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.running_window = running_window
        self.max_depth = max_depth

    def __repr__(self) -> str:
        return f"RunsDir({self.path!r})"

    def list_runs(self) -> RunList:
        listing = RunList()
        self._collect(self.path, "", 1, listing, time.time())
        return _newest_first(listing)

    def _collect(self, path: str, relpath: str, depth: int, listing: RunList, now: float) -> None:
        try:
            with os.scandir(path) as scan:
                entries = [e for e in scan if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            listing.unreadable.append(Unreadable(path, _cannot_read(e)))
            return
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                child_rel = f"{relpath}/{entry.name}" if relpath else entry.name
                run = self._read_run(entry.path, child_rel, now, listing.unreadable)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed since the listing
            except OSError as e:
                listing.unreadable.append(Unreadable(entry.path, _cannot_read(e)))
                continue
            if run is not None:
                listing.append(run)
            elif depth < self.max_depth:
                self._collect(entry.path, child_rel, depth + 1, listing, now)

    def _read_run(
        self, path: str, relpath: str, now: float, unreadable: list[Unreadable]
    ) -> Run | None:
        """The run at ``path``, or ``None`` if it holds no file. An entry that cannot
        be read is added to ``unreadable`` and skipped; raises :class:`OSError` if
        ``path`` itself cannot be read."""
        times = [os.stat(path).st_mtime]
        has_file = False
        with os.scandir(path) as scan:
            for entry in scan:
                # Hidden files (.DS_Store, .nfs*) do not make a grouping folder a run.
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        continue
                    has_file = True
                    times.append(entry.stat().st_mtime)
                except FileNotFoundError:
                    continue  # a broken symlink, or removed since the listing
                except OSError as e:  # a symlink loop, a permission
                    unreadable.append(Unreadable(entry.path, _cannot_read(e)))
        if not has_file:
            return None
        newest = max(times)
        running = now - newest < self.running_window
        return Run(
            id=relpath,
            dir=path,
            status="running" if running else "completed",
            started=min(times),
            stopped=None if running else newest,
            source=self.path,
            kind="dir",
        )


# ---------------------------------------------------------------------------
# Choosing and combining sources


def open_source(path: str | os.PathLike[str]) -> RunSource:
    """The source for ``path``: ``guild:PATH`` is a :class:`GuildHome`, ``dir:PATH`` a
    :class:`RunsDir`. Otherwise a Guild home if ``path`` is ``$GUILD_HOME`` (or
    ``~/.guild``), is named ``.guild``, or has ``runs/`` holding Guild runs; else a
    :class:`RunsDir`.

    Raises :class:`FileNotFoundError` (with the path) if ``path`` is not a
    directory, unless its kind was given.
    """
    text = os.fspath(path)
    kind, _, rest = text.partition(":")
    if kind in ("guild", "dir") and rest:
        rest = os.path.abspath(os.path.expanduser(rest))
        return GuildHome(rest) if kind == "guild" else RunsDir(rest)
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"run source {path!r} is not a directory")
    if (
        path == default_guild_home()
        or os.path.basename(path) == ".guild"
        or _holds_guild_runs(os.path.join(path, "runs"))
    ):
        return GuildHome(path)
    return RunsDir(path)


def _holds_guild_runs(runs_dir: str) -> bool:
    try:
        with os.scandir(runs_dir) as entries:
            return any(
                os.path.exists(os.path.join(entry.path, ".guild", "opref")) for entry in entries
            )
    except OSError:
        return False


def combine_sources(sources: Iterable[RunSource]) -> Callable[[], RunList]:
    """A ``list_runs`` callback over several sources. A source whose ``list_runs()``
    raises lists nothing and is named in the result's ``unreadable`` (its runs are
    unknown, not gone); the others still list. Its traceback is logged the first
    time it fails in a row."""
    sources = list(sources)
    failing: set[str] = set()

    def list_runs() -> RunList:
        listing = RunList()
        for source in sources:
            try:
                found = source.list_runs()
            except Exception as e:
                level = logging.DEBUG if source.path in failing else logging.WARNING
                log.log(level, "Listing runs of %r failed", source, exc_info=True)
                failing.add(source.path)
                message = f"listing failed: {type(e).__name__}: {e}"
                listing.unreadable.append(Unreadable(source.path, message))
                continue
            failing.discard(source.path)
            listing.extend(found)
            listing.unreadable.extend(getattr(found, "unreadable", ()))
        return _newest_first(listing)

    return list_runs
