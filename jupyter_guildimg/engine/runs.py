"""Runs and the places they come from: Guild homes and plain runs directories, how
a source is named (``guild:PATH``, ``dir:PATH`` or a path whose kind is guessed) and
which are watched by default.

Both sources are read straight from disk; Guild is never imported. A source's
``list_runs()`` returns :class:`Run` records (:mod:`.runrecord`), newest first, and
is cheap to call every second: what was read from a run's metadata is cached and
re-read only when the run's ``.guild`` files change.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from ._guildmeta import guild_status, micros_to_seconds, parse_opref, read_attr, read_sourcecode
from .racy import is_racy
from .runrecord import FINAL_STATUSES, Run, RunList, RunSource, Unreadable, newest_first_key

# The records are defined in .runrecord and exported from here too.
__all__ = [
    "FINAL_STATUSES",
    "SOURCE_KINDS",
    "GuildHome",
    "Run",
    "RunList",
    "RunSource",
    "RunsDir",
    "Unreadable",
    "combine_sources",
    "default_guild_home",
    "default_sources",
    "open_source",
    "parse_source",
    "read_guild_run",
]

log = logging.getLogger(__name__)

#: The kinds a source may be prefixed with: ``guild:PATH`` is a Guild home,
#: ``dir:PATH`` a folder of plain runs.
SOURCE_KINDS = ("guild", "dir")


def _cannot_read(error: OSError) -> str:
    return f"cannot read: {error.strerror or error}"


def default_guild_home() -> str:
    """``$GUILD_HOME`` if set, else ``~/.guild``, as Guild itself resolves it."""
    return os.path.abspath(os.environ.get("GUILD_HOME") or os.path.expanduser("~/.guild"))


def _newest_first(runs: RunList) -> RunList:
    runs.sort(key=newest_first_key, reverse=True)
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
        if run is not None and not is_racy(max(signature), now_ns):
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


def parse_source(text: str, root: str | None = None) -> tuple[str | None, str]:
    """``(kind, path)`` of a source as a user names it: ``guild:PATH`` or ``dir:PATH``
    give their kind (one of :data:`SOURCE_KINDS`), anything else ``None`` (the kind is
    then guessed by :func:`open_source`). ``path`` is absolute: ``~`` expanded, a
    relative path resolved against ``root`` (default: the current directory), an
    empty one is ``root`` itself. Nothing is read from disk."""
    kind, sep, rest = text.partition(":")
    if not (sep and kind in SOURCE_KINDS):
        kind, rest = "", text
    path = os.path.expanduser(rest)
    if root is not None:
        path = os.path.join(root, path)
    return kind or None, os.path.abspath(path)


def default_sources(root: str | None = None) -> list[str]:
    """What is watched when no source is given: the Guild home
    (:func:`default_guild_home`) if it exists, else ``runs`` under ``root`` (without
    ``root``: the relative ``"runs"``, which :func:`open_source` resolves against its
    own ``root``). Open them with ``missing_ok=True``: ``runs`` may not exist yet."""
    home = default_guild_home()
    if os.path.isdir(home):
        return [home]
    return [os.path.join(root, "runs") if root is not None else "runs"]


def open_source(
    path: str | os.PathLike[str], root: str | None = None, *, missing_ok: bool = False
) -> RunSource:
    """The source for ``path`` (:func:`parse_source`, relative to ``root``):
    ``guild:PATH`` is a :class:`GuildHome`, ``dir:PATH`` a :class:`RunsDir`, whether
    or not ``PATH`` exists yet. Otherwise a Guild home if the path is
    ``$GUILD_HOME`` (or ``~/.guild``), is named ``.guild``, or has ``runs/`` holding
    Guild runs; else a :class:`RunsDir`.

    A path without a kind that is not a directory raises :class:`FileNotFoundError`
    (naming the path), unless ``missing_ok``: it is then watched until it appears, as
    a Guild home if it is named ``.guild``, else as a :class:`RunsDir`.
    """
    kind, full = parse_source(os.fspath(path), root)
    if kind is not None:
        return GuildHome(full) if kind == "guild" else RunsDir(full)
    if not os.path.isdir(full):
        if not missing_ok:
            raise FileNotFoundError(f"run source {full!r} is not a directory")
        return GuildHome(full) if os.path.basename(full) == ".guild" else RunsDir(full)
    if (
        full == default_guild_home()
        or os.path.basename(full) == ".guild"
        or _holds_guild_runs(os.path.join(full, "runs"))
    ):
        return GuildHome(full)
    return RunsDir(full)


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
