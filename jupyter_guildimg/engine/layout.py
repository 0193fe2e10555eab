"""The log dir's layout and its file-system rules: every name the monitor writes
there, the "is this mine" test built from those names, and the lock that makes one
monitor at a time its owner. Nothing here ever follows a symlink into a run
directory, and nothing deletes a file the monitor could not have written.

What the monitor writes in the log dir, per run (``<logdir>/<run name>/``):

- symlinks mirroring the run's files (:mod:`.mirror`);
- :data:`IMAGES_DIR` holding one event file per image revision,
  :func:`summary_file_name` (:mod:`.summaries`);
- :data:`HPARAMS_FILE` and :data:`END_FILE`, the HParams session of a Guild run
  (:mod:`.runlog`);
- :data:`TEMP_PREFIX` files, briefly, while an event file is written (:mod:`.tfevent`).

:func:`is_own_file` is composed from these same names, so renaming one cannot make
:func:`safe_remove` take the monitor's own files for a user's.

A log dir is owned by one monitor at a time: :class:`LogDirLock` holds an
exclusive ``flock`` on the log directory itself. The directory rather than a lock
file inside it, so the monitor adds no file of its own to the log dir (TensorBoard
and the spec see only run directories) and so the lock follows the directory when
it is renamed. ``flock`` locks belong to an open file description: the kernel drops
them when the holder exits, however it exits, and a second open in the same
process conflicts like another process would.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time

__all__ = [
    "END_FILE",
    "HPARAMS_FILE",
    "IMAGES_DIR",
    "TEMP_PREFIX",
    "LogDirLock",
    "LogDirLockedError",
    "SourceError",
    "is_own_file",
    "logdir_in_use",
    "logdir_overlap",
    "parse_summary_name",
    "path_digest",
    "safe_remove",
    "summary_file_name",
]

log = logging.getLogger(__name__)

# A probe by logdir_in_use() holds a shared lock for an instant: a monitor taking
# the lock meanwhile tries again this many times before calling the dir taken.
_LOCK_ATTEMPTS = 5
_LOCK_RETRY_SECONDS = 0.02

# ---------------------------------------------------------------------------
# The names the monitor writes

# TensorBoard reads the files whose names contain "tfevents", in name order.
_EVENTS = "events.out.tfevents."
#: A run's image summaries, next to its mirrored files (a run's own top-level entry
#: of that name is not mirrored).
IMAGES_DIR = ".images"
#: The HParams session start of a Guild run, written once.
HPARAMS_FILE = f"{_EVENTS}0000000000.hparams"
#: The HParams session end, written when the run has ended. Its name sorts after
#: every event file a run writes itself, so TensorBoard reads it last.
END_FILE = f"{_EVENTS}9999999999.time"
#: Temporary files never contain "tfevents", so TensorBoard ignores them until they
#: are renamed into place complete; the rest of the name is lowercase hex.
TEMP_PREFIX = ".guildimg-tmp-"

_SUMMARY_NAME = re.compile(rf"^{re.escape(_EVENTS)}(\d{{10}})\.image\.([0-9a-f]{{32}})$")
_TEMP_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}[0-9a-f]+$")


def path_digest(relpath: str) -> str:
    """The md5 hex of a run-relative image path, as used in summary file names."""
    return hashlib.md5(relpath.encode("utf-8")).hexdigest()


def summary_file_name(counter: int, digest: str) -> str:
    """The name, in :data:`IMAGES_DIR`, of the summary of one image revision:
    ``counter`` orders every revision of the run, ``digest`` is the image's
    :func:`path_digest`."""
    return f"{_EVENTS}{counter:010d}.image.{digest}"


def parse_summary_name(name: str) -> tuple[int, str] | None:
    """``(counter, digest)`` of a :func:`summary_file_name`, else ``None``."""
    match = _SUMMARY_NAME.match(name)
    return None if match is None else (int(match.group(1)), match.group(2))


def is_own_file(name: str) -> bool:
    """Whether a log-dir file name is one the monitor writes: an image summary, the
    hparams or end file, or a temporary file."""
    return (
        name in (HPARAMS_FILE, END_FILE)
        or _SUMMARY_NAME.match(name) is not None
        or _TEMP_NAME.match(name) is not None
    )


def safe_remove(path: str) -> list[str]:
    """Remove ``path`` from the log dir: symlinks, the monitor's own files and the
    directories they leave empty. Anything else is left in place; the paths left
    are returned (and logged) so nothing a user put there is lost."""
    kept: list[str] = []
    if not os.path.lexists(path):
        return kept
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            _remove_file(path, kept)
        else:
            _remove_tree(path, kept)
    except FileNotFoundError:
        pass
    if kept:
        log.warning(
            "Left %d file(s) the monitor did not write in the log dir, e.g. %r", len(kept), kept[0]
        )
    return kept


def _remove_file(path: str, kept: list[str]) -> None:
    if os.path.islink(path) or is_own_file(os.path.basename(path)):
        os.unlink(path)
    else:
        kept.append(path)


def _remove_tree(path: str, kept: list[str]) -> None:
    with os.scandir(path) as entries:
        children = list(entries)
    for entry in children:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path, kept)
        else:
            _remove_file(entry.path, kept)
    try:
        os.rmdir(path)
    except OSError:
        if not kept:
            raise


# ---------------------------------------------------------------------------
# The log dir's lock


class LogDirLockedError(RuntimeError):
    """The log dir is held by another monitor. ``pid`` is the holder's process id
    when the system tells it (Linux's ``/proc/locks``), else ``None``."""

    def __init__(self, logdir: str, pid: int | None) -> None:
        if pid is None:
            holder = "held by another process"
        elif pid == os.getpid():
            holder = f"held by pid {pid}, this process"
        else:
            holder = f"held by pid {pid}"
        super().__init__(
            f"log dir {logdir!r} is in use by another monitor ({holder}); two monitors "
            "writing one log dir would overwrite each other's image history"
        )
        self.logdir = logdir
        self.pid = pid


class LogDirLock:
    """An exclusive lock of the directory ``path`` (which must exist to be locked).

    :meth:`acquire` is idempotent. On a file system that cannot lock (some network
    file systems refuse ``flock`` on a directory) it logs a warning once and lets
    the monitor go on unlocked: losing all capture would be worse than the risk
    of a second monitor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._unsupported = False

    def __del__(self) -> None:
        # A monitor dropped without close() holds nothing any more.
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; raises :class:`LogDirLockedError` if another holds it."""
        if self._fd is not None or self._unsupported:
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for attempt in range(_LOCK_ATTEMPTS):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == _LOCK_ATTEMPTS - 1:
                        raise LogDirLockedError(self.path, _holder_pid(self.path)) from None
                    time.sleep(_LOCK_RETRY_SECONDS)
        except LogDirLockedError:
            os.close(fd)
            raise
        except OSError:
            os.close(fd)
            self._unsupported = True
            log.warning("Cannot lock the log dir %r; going on unlocked", self.path, exc_info=True)
            return
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (closing the descriptor releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def logdir_in_use(path: str) -> bool:
    """Whether a live monitor holds the lock of the log dir ``path``. It probes with
    a shared lock held for an instant, which a monitor taking the lock meanwhile
    waits out; the holder itself is not disturbed. ``False`` for a path that does
    not exist or cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as e:
        log.debug("Cannot probe the lock of %r: %s", path, e, exc_info=True)
        return False
    finally:
        os.close(fd)  # also drops the probe's lock
    return False


def _holder_pid(path: str) -> int | None:
    """The pid holding a ``flock`` on ``path``, from ``/proc/locks`` (Linux)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146313 0 EOF"; waiters read "1: -> FLOCK …".
    for line in lines:
        fields = line.split()
        if fields[1:4] == ["FLOCK", "ADVISORY", "WRITE"] and fields[5:6] == [device]:
            return int(fields[4]) if fields[4].isdigit() and int(fields[4]) > 0 else None
    return None


class SourceError(ValueError):
    """A run source that cannot be watched: it contains the log dir or lies inside it."""


def logdir_overlap(source: str, logdir: str) -> str:
    """Why ``source`` cannot be watched with ``logdir`` as the log dir ("" if it can):
    it contains the log dir (mirroring it would write into the runs it watches, and the
    monitor refuses every run then) or lies inside it (the mirror would mirror itself).
    Both are compared after resolving symbolic links."""
    real_source, real_logdir = os.path.realpath(source), os.path.realpath(logdir)
    common = os.path.commonpath([real_source, real_logdir])
    if common == real_source:
        return (
            f"run source {source!r} contains the monitor's log dir {logdir!r}; "
            "watch a folder of runs that does not contain it"
        )
    if common == real_logdir:
        return f"run source {source!r} lies inside the monitor's log dir {logdir!r}"
    return ""
