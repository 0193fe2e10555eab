"""What a :class:`~.fswatch.RunsWatcher` watches, and why a root is polled instead.

:func:`plan_watch` decides, from the file system as it is now, for the roots where
new runs appear and the active run dirs:

- which roots are *polled*, and why (:data:`OBJECT_STORE`, :data:`FORCED`,
  :data:`NOT_INSTALLED`, :data:`MISSING`, or :func:`.fstype.untrusted_reason` for a
  network or FUSE mount);
- which directories are watched non-recursively (*flat*: a Guild home's ``runs/``,
  a root holding ``<id>/.guild/``, one watch however many runs it holds) and which
  recursively (*deep*: any other root, and the active runs not already covered by
  their root's deep watch nor under a polled root).

Directories are named by their :func:`identity` (path, device, inode), so that one
deleted and re-created counts as a change. Nothing here makes a watch: the watcher
does, and reports a watch it could not hold with :func:`failure_reason`.
:func:`count_dirs` estimates what a deep watch costs (inotify: one watch a
directory).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .fstype import (
    filesystem_type,
    is_out_of_instances,
    is_watch_limit,
    max_user_instances,
    max_user_watches,
    read_mountinfo,
    untrusted_reason,
)

__all__ = [
    "CLOSED",
    "FORCED",
    "MISSING",
    "NOT_INSTALLED",
    "OBJECT_STORE",
    "Identity",
    "WatchPlan",
    "count_dirs",
    "failure_reason",
    "identity",
    "plan_watch",
]

#: A watched directory: (path, device, inode).
Identity = tuple[str, int, int]

FORCED = "polling forced by the setting"
NOT_INSTALLED = "watchfiles is not installed"
MISSING = "does not exist yet"
OBJECT_STORE = "object storage: no file-system events"
CLOSED = "the watcher is closed"


@dataclass(frozen=True)
class WatchPlan:
    """What to watch for one :func:`plan_watch` call. The watcher takes the dicts over
    (and may update ``has_runs`` as it adopts new runs)."""

    #: root -> why it is polled ("" when it is watched), in the roots' order
    static: dict[str, str]
    #: root -> whether active runs under it are watched in the deep set
    has_runs: dict[str, bool]
    flat: frozenset[Identity]  # watched non-recursively
    deep: frozenset[Identity]  # watched recursively
    guild_roots: frozenset[str]  # the roots known to be Guild runs dirs, these included


def identity(path: str) -> Identity | None:
    """``path`` with its inode, so that a directory deleted and re-created counts as
    a change (its old watch went with the old inode); None if it is not a directory."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def count_dirs(path: str, cap: int) -> int:
    """The directories under ``path`` (itself included, symlinks not followed), at
    most ``cap``: the watches a recursive watch of it holds."""
    count = 0
    for _dirpath, dirnames, _files in os.walk(path):
        count += 1
        if count >= cap:
            break
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(_dirpath, d))]
    return count


def failure_reason(error: Exception) -> str:
    """Why a watch that failed with ``error`` is polled instead."""
    if is_watch_limit(error):
        return f"watch limit reached (max_user_watches={max_user_watches()})"
    if is_out_of_instances(error):
        return (
            "no inotify instance to spare "
            f"(max_user_instances={max_user_instances()}, or too many open files)"
        )
    return f"watch failed: {error}"


def _holds_guild_runs(root: str) -> bool:
    # A Guild home's runs/ holds <id>/.guild/: look at a few entries, not all of them.
    try:
        with os.scandir(root) as entries:
            for n, entry in enumerate(entries):
                if n >= 50:
                    break
                if os.path.isdir(os.path.join(entry.path, ".guild")):
                    return True
    except OSError:
        return False
    return False


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def plan_watch(
    roots: Sequence[str],
    active_runs: Sequence[str],
    *,
    force_polling: bool,
    installed: bool,
    guild_roots: Collection[str],
) -> WatchPlan:
    """What to watch for ``roots`` and ``active_runs`` (see the module's docstring).
    ``installed``: whether watchfiles is; ``guild_roots``: the roots already known to
    be Guild runs dirs (known once seen, even if emptied since)."""
    # An object-store source's root is a URL: no events there, it is polled.
    roots = [r if "://" in r else os.path.abspath(r) for r in dict.fromkeys(roots)]
    guild = set(guild_roots)
    static: dict[str, str] = {}
    flat: set[Identity] = set()
    deep: set[Identity] = set()
    events_roots: list[tuple[str, bool]] = []  # (root, recursive)
    # One read of the mount table per call (None where there is none: not Linux).
    mounts = (read_mountinfo() or []) if not force_polling and installed else []
    for root in roots:
        if "://" in root:
            static[root] = OBJECT_STORE
            continue
        root_identity = identity(root)
        if force_polling:
            static[root] = FORCED
        elif not installed:
            static[root] = NOT_INSTALLED
        elif root_identity is None:
            static[root] = MISSING
        else:
            static[root] = untrusted_reason(filesystem_type(root, mounts))
        if static[root] or root_identity is None:
            continue
        if root not in guild and _holds_guild_runs(root):
            guild.add(root)
        recursive = root not in guild
        (deep if recursive else flat).add(root_identity)
        events_roots.append((root, recursive))
    has_runs = dict.fromkeys(roots, False)
    for run in dict.fromkeys(os.path.abspath(r) for r in active_runs):
        owners = [(r, rec) for r, rec in events_roots if _under(run, r)]
        if owners:
            root, recursive = max(owners, key=lambda owner: len(owner[0]))
            if recursive:
                continue  # its root's watch covers it
            run_identity = identity(run)
            if run_identity is not None:
                deep.add(run_identity)
                has_runs[root] = True
            continue
        if any(_under(run, r) for r in roots):
            continue  # under a polled root: polled with it
        if not untrusted_reason(filesystem_type(run, mounts)):
            run_identity = identity(run)
            if run_identity is not None:
                deep.add(run_identity)
    return WatchPlan(static, has_runs, frozenset(flat), frozenset(deep), frozenset(guild))
