"""Plain runs directories (``runs/``, ``lightning_logs/``, ``outputs/``): folders of
runs that are not Guild runs, read from disk. Exported from :mod:`.runs` too."""

from __future__ import annotations

import logging
import os
import stat
import time

from .runrecord import Run, RunList, RunSource, Unreadable, newest_first_key, tick_listing

__all__ = ["RunsDir", "cannot_read", "is_real_dir", "newest_first"]

log = logging.getLogger(__name__)


def cannot_read(error: OSError) -> str:
    """How a listing reports a path it could not read."""
    return f"cannot read: {error.strerror or error}"


def is_real_dir(path: str) -> bool:
    """Whether ``path`` is a directory, not a symlink to one (as listings see runs);
    raises :class:`OSError` if it cannot be told."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def newest_first(runs: RunList) -> RunList:
    """Sort ``runs`` in place, newest first (:func:`newest_first_key`); returns it."""
    runs.sort(key=newest_first_key, reverse=True)
    return runs


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
        return newest_first(listing)

    def _parts(self, path: str) -> list[str] | None:
        """``path``'s components below :attr:`path` that a listing would look at;
        ``None`` when it is not below it, is hidden or too deep to be a run."""
        if not path.startswith(self.path.rstrip(os.sep) + os.sep):
            return None
        parts = [p for p in os.path.relpath(path, self.path).split(os.sep) if p]
        if not parts or any(p.startswith(".") for p in parts[: self.max_depth]):
            return None
        return parts

    def locate(self, path: str) -> str | None:
        """The shallowest directory at or above ``path`` (and below :attr:`path`,
        within ``max_depth``) that holds a file: the run a listing would find there."""
        parts = self._parts(path)
        if parts is None:
            return None
        for depth in range(1, min(len(parts), self.max_depth) + 1):
            candidate = os.path.join(self.path, *parts[:depth])
            try:
                if not is_real_dir(candidate):
                    return None
                if self._read_run(candidate, "", time.time(), []) is not None:
                    return candidate
            except OSError:
                log.debug("Cannot tell whether %r is a run", candidate, exc_info=True)
                return candidate  # read_run will report it
        return None

    def read_run(self, run_dir: str) -> Run | None:
        """The run at ``run_dir``, if a listing would find it there: below
        :attr:`path` within ``max_depth``, not hidden, below folders that only group
        runs, and holding a file."""
        parts = self._parts(run_dir)
        if parts is None or len(parts) > self.max_depth or not is_real_dir(run_dir):
            return None
        now = time.time()
        unreadable: list[Unreadable] = []
        for depth in range(1, len(parts)):  # a run inside a run is not listed
            group = os.path.join(self.path, *parts[:depth])
            if self._read_run(group, "", now, unreadable) is not None:
                return None
        try:
            return self._read_run(run_dir, "/".join(parts), now, unreadable)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _collect(self, path: str, relpath: str, depth: int, listing: RunList, now: float) -> None:
        try:
            with os.scandir(path) as scan:
                entries = [e for e in scan if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            listing.unreadable.append(Unreadable(path, cannot_read(e)))
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
                listing.unreadable.append(Unreadable(entry.path, cannot_read(e)))
                continue
            if run is not None:
                listing.append(run)
                tick_listing(len(listing))
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
                    unreadable.append(Unreadable(entry.path, cannot_read(e)))
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
