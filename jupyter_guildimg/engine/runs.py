"""Runs and the places they come from: Guild homes and plain runs directories, how
a source is named (``guild:PATH``, ``dir:PATH`` or a path whose kind is guessed) and
which are watched by default.

Both sources are read straight from disk; Guild is never imported. A source's
``list_runs()`` returns :class:`Run` records (:mod:`.runrecord`), newest first, and
is cheap to call every second: what was read from a run's metadata is cached and
re-read only when the run's ``.guild`` files change.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ._guildmeta import guild_status, micros_to_seconds, parse_opref, read_attr, read_sourcecode
from .listchild import LIST_IN_CHILD_AT, child_listing, list_in_child
from .objectstore import ObjectStoreOptions, ObjectStoreSource, is_object_url, normalize_url
from .racy import is_racy
from .runrecord import (
    FINAL_STATUSES,
    CombinedSources,
    Run,
    RunList,
    RunSource,
    Unreadable,
    combine_sources,
    tick_listing,
)
from .runsdir import RunsDir, cannot_read, is_real_dir, newest_first

# The records are defined in .runrecord and exported from here too.
__all__ = [
    "CONVENTIONAL_RUN_FOLDERS",
    "FINAL_STATUSES",
    "SOURCE_KINDS",
    "START_CANDIDATES",
    "CombinedSources",
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

#: Threads reading runs' metadata at once in a listing of many runs not read before.
READ_THREADS = 8
#: ``GuildHome.start_times(newest=n)`` reads the start times of n × this many runs.
START_CANDIDATES = 10
_THREADED_READS = 64  # fewer new runs than this are read in the listing's thread
_PROBE_READS = 32  # runs read first, timed: from the disk, or from the page cache?
# A run's metadata read from the page cache takes ~0.2 ms here, all CPU; from the disk
# 0.6–7 ms, mostly waiting.
_DISK_READ_SECONDS = 0.0004

T = TypeVar("T")
U = TypeVar("U")

#: The kinds a source may be prefixed with: ``guild:PATH`` is a Guild home,
#: ``dir:PATH`` a folder of plain runs.
SOURCE_KINDS = ("guild", "dir")


def default_guild_home() -> str:
    """``$GUILD_HOME`` if set, else ``~/.guild``, as Guild itself resolves it."""
    return os.path.abspath(os.environ.get("GUILD_HOME") or os.path.expanduser("~/.guild"))


# ---------------------------------------------------------------------------
# Guild homes


def _child_of(path: str, parent: str) -> str | None:
    """The first component of ``path`` below ``parent``, ``None`` if not below it."""
    prefix = parent.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :].split(os.sep, 1)[0] or None


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

    def cache_state(self) -> dict[str, tuple[tuple[int, int, int], Run]]:
        """What the next :meth:`list_runs` goes on from (a child listing's hands it
        back, see :mod:`.listchild`)."""
        return dict(self._cache)

    def list_runs(self) -> RunList:
        try:
            with os.scandir(self.runs_dir) as scan:
                entries = [e for e in scan if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            self._cache.clear()
            return RunList()
        except OSError as e:
            # The runs are unknown, not gone: the cache is kept for the next call.
            return RunList(unreadable=[Unreadable(self.runs_dir, cannot_read(e))])
        now_ns = time.time_ns()
        cache: dict[str, tuple[tuple[int, int, int], Run]] = {}
        listing = RunList()

        reads = itertools.count(1)

        def read(entry: os.DirEntry[str]) -> Run | OSError | None:
            tick_listing(next(reads))  # a no-op in reader threads
            try:
                return self._read_entry(entry.name, entry.path, now_ns, cache)
            except OSError as e:
                return e

        unread = sum(entry.name not in self._cache for entry in entries)
        if unread >= LIST_IN_CHILD_AT and child_listing.get():
            listed = list_in_child(self.path)
            if listed.ok:
                self._cache = listed.cache or {}
                return newest_first(listed.runs)
            log.warning("%s; listing %s in the server process instead", listed.message, self)
        for entry, run in zip(entries, _read_all(read, entries, unread), strict=True):
            if isinstance(run, OSError):
                where = run.filename if isinstance(run.filename, str) else entry.path
                listing.unreadable.append(Unreadable(where, cannot_read(run)))
            elif run is not None:
                listing.append(run)
        self._cache = cache
        return newest_first(listing)

    def start_times(self, newest: int | None = None) -> dict[str, float]:
        """Each ``runs/<id>`` and its ``started`` (else ``initialized``) attribute; a
        dir without either, or that cannot be read, is left out.

        With ``newest``, only the runs whose dir changed last are read: the
        ``newest`` × :data:`START_CANDIDATES` latest by the dir's mtime, and every
        run as recent as the last of those (ties: a copied home has one mtime for
        all). A run dir is made when the run is, and the run's own files go in it, so
        a run started later than those is not left out unless it wrote nothing at its
        top level since it was made; the full listing that follows lists it anyway.
        At 100,000 runs, a ``stat`` a run instead of a file read saved seconds."""
        try:
            with os.scandir(self.runs_dir) as scan:
                dirs = [e.path for e in scan if e.is_dir(follow_symlinks=False)]
        except OSError:
            return {}
        if newest is not None and len(dirs) > newest * START_CANDIDATES:
            dirs = _latest_changed(dirs, newest * START_CANDIDATES)

        def read(run_dir: str) -> float | None:
            attrs = os.path.join(run_dir, ".guild", "attrs")
            started = micros_to_seconds(read_attr(attrs, "started"))
            if started is None:
                started = micros_to_seconds(read_attr(attrs, "initialized"))
            return started

        times = _read_all(read, dirs, len(dirs))
        return {run_dir: t for run_dir, t in zip(dirs, times, strict=True) if t is not None}

    @property
    def watch_root(self) -> str:
        """``<home>/runs``: new runs appear directly in it."""
        return self.runs_dir

    def locate(self, path: str) -> str | None:
        """``<home>/runs/<id>`` for any path at or below it."""
        name = _child_of(path, self.runs_dir)
        return None if name is None else os.path.join(self.runs_dir, name)

    def read_run(self, run_dir: str) -> Run | None:
        """The run at ``run_dir`` (``<home>/runs/<id>``), through the same cache as
        :meth:`list_runs`."""
        if os.path.dirname(run_dir) != self.runs_dir or not is_real_dir(run_dir):
            return None
        name = os.path.basename(run_dir)
        run = self._read_entry(name, run_dir, time.time_ns(), self._cache)
        if run is None:
            self._cache.pop(name, None)
        return run

    def _read_entry(
        self,
        name: str,
        path: str,
        now_ns: int,
        cache: dict[str, tuple[tuple[int, int, int], Run]],
    ) -> Run | None:
        guild_dir = os.path.join(path, ".guild")
        signature = (
            _stat_mtime(guild_dir),
            _stat_mtime(os.path.join(guild_dir, "attrs")),
            _stat_mtime(os.path.join(guild_dir, "attrs", "label")),
        )
        if signature[0] < 0:
            return None
        cached = self._cache.get(name)
        # A running run can end without touching its files (killed with its
        # LOCK left behind), so its status is always read afresh.
        if cached is not None and cached[0] == signature and cached[1].status != "running":
            run: Run | None = cached[1]
        else:
            run = read_guild_run(path, self.path)
        if run is not None and not is_racy(max(signature), now_ns):
            cache[name] = (signature, run)
        return run


def _latest_changed(dirs: list[str], count: int) -> list[str]:
    """The ``count`` dirs changed last (by mtime), and every other dir as recent as
    the last of them; a dir that cannot be stat'ed is kept."""
    mtimes: dict[str, float] = {}
    for path in dirs:
        try:
            mtimes[path] = os.lstat(path).st_mtime
        except OSError:
            mtimes[path] = float("inf")  # not known to be older: read it
    cutoff = heapq.nlargest(count, mtimes.values())[-1]
    return [path for path in dirs if mtimes[path] >= cutoff]


def _read_all(read: Callable[[T], U], items: Sequence[T], unread: int) -> list[U]:
    """``read`` of each item, in order. With a cold page cache each small file of a
    run is a disk read of its own (a first listing of 10,000 runs took 71 s here, one
    read at a time), and reads in flight together overlap on any disk; but from a
    warm cache, threads only contend for the GIL (and slowed Jupyter's own requests
    several times over). So a listing with many runs not read before (``unread``)
    times its first reads, and reads the rest in threads only if they waited (for
    the disk: far more time than CPU)."""
    if unread < _THREADED_READS:
        return [read(item) for item in items]
    started, cpu = time.perf_counter(), time.thread_time()
    head = [read(item) for item in items[:_PROBE_READS]]
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    if wall < _PROBE_READS * _DISK_READ_SECONDS or wall < 2 * cpu:  # not waiting: warm
        return head + [read(item) for item in items[_PROBE_READS:]]
    with concurrent.futures.ThreadPoolExecutor(
        READ_THREADS, thread_name_prefix="guildimg-listing"
    ) as pool:
        return head + list(pool.map(read, items[_PROBE_READS:]))


# ---------------------------------------------------------------------------
# Choosing and combining sources


def parse_source(text: str, root: str | None = None) -> tuple[str | None, str]:
    """``(kind, path)`` of a source as a user names it: ``guild:PATH`` or ``dir:PATH``
    give their kind (one of :data:`SOURCE_KINDS`), anything else ``None`` (the kind is
    then guessed by :func:`open_source`). ``path`` is absolute: ``~`` expanded, a
    relative path resolved against ``root`` (default: the current directory), an
    empty one is ``root`` itself. An object-store URL (``s3://bucket/prefix``,
    :func:`~.objectstore.is_object_url`) is kept a URL, without a trailing ``/``.
    Nothing is read from disk."""
    kind, sep, rest = text.partition(":")
    if not (sep and kind in SOURCE_KINDS):
        kind, rest = "", text
    if is_object_url(rest):
        return kind or None, normalize_url(rest)
    path = os.path.expanduser(rest)
    if root is not None:
        path = os.path.join(root, path)
    return kind or None, os.path.abspath(path)


#: Folders under the root directory that conventionally hold runs, in a layout
#: :class:`RunsDir` reads: PyTorch's ``SummaryWriter`` (``runs/<date_host>/``),
#: Lightning (``lightning_logs/version_N/``), Hydra (``outputs/<date>/<time>/``, and
#: ``multirun/<date>/<time>/``: a sweep is one run, its jobs' images under ``<job>/``).
#: MLflow's ``mlruns/`` is not one of them: its experiment folders hold files and would
#: each read as one run.
CONVENTIONAL_RUN_FOLDERS = ("runs", "lightning_logs", "outputs", "multirun")


def default_sources(root: str | None = None) -> list[str]:
    """What is watched when no source is given: every conventional source that is a
    directory now: the Guild home (:func:`default_guild_home`, as ``guild:PATH``) and
    the :data:`CONVENTIONAL_RUN_FOLDERS` under ``root`` (default: the current
    directory), as absolute paths. When none exists, ``runs`` under ``root``, watched
    until it appears: open them with ``missing_ok=True``. A folder that is the Guild
    home, or lies inside it, is left out (the home already covers it)."""
    base = os.path.abspath(root if root is not None else os.getcwd())
    home = default_guild_home()
    found = [f"guild:{home}"] if os.path.isdir(home) else []
    for name in CONVENTIONAL_RUN_FOLDERS:
        folder = os.path.join(base, name)
        inside_home = folder == home or folder.startswith(home.rstrip(os.sep) + os.sep)
        if os.path.isdir(folder) and not (found and inside_home):
            found.append(folder)
    return found or [os.path.join(base, "runs")]


def open_source(
    path: str | os.PathLike[str],
    root: str | None = None,
    *,
    missing_ok: bool = False,
    object_options: ObjectStoreOptions | None = None,
) -> RunSource:
    """The source for ``path`` (:func:`parse_source`, relative to ``root``):
    ``guild:PATH`` is a :class:`GuildHome`, ``dir:PATH`` a :class:`RunsDir`, whether
    or not ``PATH`` exists yet. Otherwise a Guild home if the path is
    ``$GUILD_HOME`` (or ``~/.guild``), is named ``.guild``, or has ``runs/`` holding
    Guild runs; else a :class:`RunsDir`.

    A path without a kind that is not a directory raises :class:`FileNotFoundError`
    (naming the path), unless ``missing_ok``: it is then watched until it appears, as
    a Guild home if it is named ``.guild``, else as a :class:`RunsDir`.

    An object-store URL (``guild:s3://…``, ``dir:s3://…``, or ``s3://…`` guessed at
    its first listing) is an :class:`~.objectstore.ObjectStoreSource` with
    ``object_options``; nothing is read from the store here. Raises
    :class:`~.layout.SourceError` when its fsspec package is not installed.
    """
    kind, full = parse_source(os.fspath(path), root)
    if is_object_url(full):
        return ObjectStoreSource(full, kind, object_options, guild_home=GuildHome)
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
