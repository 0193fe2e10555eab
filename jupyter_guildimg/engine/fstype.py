"""Which file system a path is on, and whether inotify events can be trusted there
(and whether inotify can take one more watch).

inotify sees the writes made through this machine's kernel only: on a network or
FUSE mount, files written by other machines (a training job on a cluster node
writing to NFS) change without an event, and neither watchfiles nor Rust notify
notices. Such paths must be polled. The file system comes from
``/proc/self/mountinfo`` (Linux); elsewhere every path counts as trusted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import sys
from typing import NamedTuple

__all__ = [
    "UNTRUSTED_TYPES",
    "Mount",
    "filesystem_type",
    "inotify_limit_reached",
    "is_out_of_instances",
    "is_watch_limit",
    "max_user_instances",
    "max_user_watches",
    "mount_of",
    "parse_mountinfo",
    "read_mountinfo",
    "untrusted_reason",
]

MOUNTINFO = "/proc/self/mountinfo"

# File systems whose contents change without inotify hearing of it: network file
# systems and anything served by a user-space (FUSE) daemon.
UNTRUSTED_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "ncpfs",
    }
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class Mount(NamedTuple):
    """One line of mountinfo: where a file system is mounted, and its type."""

    mount_point: str
    fs_type: str


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \040-style octal.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text (``proc(5)``), in its order (a later mount on
    the same point hides an earlier one). Lines it cannot parse are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)  # optional fields end at a lone "-"
        except ValueError:
            continue
        if len(fields) <= separator + 1:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[separator + 1]))
    return mounts


def read_mountinfo() -> list[Mount] | None:
    """This process's mounts, or None where there is no ``/proc/self/mountinfo``
    (not Linux) or it cannot be read."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return None


def _under(path: str, mount_point: str) -> bool:
    return (
        mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
    )


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (resolved: symlinks lead to where the files
    are): the one with the longest mount point above it, the last one of equal
    length (it is mounted over the others)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        if _under(real, mount.mount_point) and (
            best is None or len(mount.mount_point) >= len(best.mount_point)
        ):
            best = mount
    return best


def filesystem_type(path: str, mounts: list[Mount] | None = None) -> str:
    """The file-system type of ``path`` as mountinfo names it (``"ext4"``,
    ``"nfs4"``, ``"fuse.sshfs"``), or "" when unknown (not Linux). ``mounts``
    defaults to this process's (:func:`read_mountinfo`)."""
    if mounts is None:
        mounts = read_mountinfo()
    mount = mount_of(path, mounts) if mounts else None
    return mount.fs_type if mount is not None else ""


def untrusted_reason(fs_type: str) -> str:
    """Why events cannot be trusted on a file system of type ``fs_type``, or "" if
    they can (local file systems, and "" for unknown)."""
    if fs_type in UNTRUSTED_TYPES or fs_type.startswith("fuse"):
        return f"{fs_type} mount: inotify does not see other machines' writes"
    return ""


_IN_CLOEXEC = 0o2000000
_IN_CREATE = 0x100


def inotify_limit_reached(path: str) -> bool:
    """Whether this user can add no more inotify watches (``max_user_watches``):
    tries to add one on the directory ``path`` in a fresh instance, and removes it.

    Rust notify adds the watches of directories created under a recursive watch
    itself, and drops the error when it cannot: this probe is how that is noticed.
    False when it cannot tell (not Linux, no instance to spare, ``path`` gone).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None:
        return False
    fd = libc.inotify_init1(_IN_CLOEXEC)
    if fd < 0:
        return False
    try:
        wd = libc.inotify_add_watch(fd, os.fsencode(path), _IN_CREATE)
        return wd < 0 and ctypes.get_errno() == errno.ENOSPC
    finally:
        os.close(fd)  # the watch goes with its instance


_LIBC: list[ctypes.CDLL | None] = []


def _libc() -> ctypes.CDLL | None:
    if not _LIBC:
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # the C library the process runs on
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]


MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"
USER_NS_MAX_WATCHES = "/proc/sys/user/max_inotify_watches"
MAX_USER_INSTANCES = "/proc/sys/fs/inotify/max_user_instances"
USER_NS_MAX_INSTANCES = "/proc/sys/user/max_inotify_instances"


def _smallest_limit(*paths: str) -> str:
    # The limit in force is the smallest of the system's and this user namespace's
    # (a container may set a lower one in /proc/sys/user).
    values = []
    for path in paths:
        try:
            with open(path) as f:
                values.append(int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return str(min(values)) if values else "unknown"


def max_user_watches() -> str:
    """The inotify watch limit in force for this user, as text ("unknown" if unreadable)."""
    return _smallest_limit(MAX_USER_WATCHES, USER_NS_MAX_WATCHES)


def max_user_instances() -> str:
    """The inotify instance limit in force for this user, as text ("unknown" if
    unreadable): every watching program (an editor, a browser) holds some."""
    return _smallest_limit(MAX_USER_INSTANCES, USER_NS_MAX_INSTANCES)


def is_out_of_instances(error: BaseException) -> bool:
    """Whether ``error`` (from starting a watch) says no inotify instance could be
    made: ``EMFILE``, the instance limit or (rarely) the descriptor limit."""
    if isinstance(error, OSError) and error.errno == errno.EMFILE:
        return True
    # notify reports inotify_init1's EMFILE as text, which watchfiles raises as it is.
    text = str(error).lower()
    return "too many open files" in text or "os error 24" in text


def is_watch_limit(error: BaseException) -> bool:
    """Whether ``error`` (from adding a watch) says the watch limit is reached."""
    # inotify_add_watch fails with ENOSPC at the limit; notify turns it into
    # "OS file watch limit reached", which watchfiles raises as it is.
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    text = str(error).lower()
    return "watch limit" in text or "no space left" in text or "os error 28" in text
