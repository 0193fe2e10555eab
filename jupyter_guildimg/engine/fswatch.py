"""File-system events for the monitor: which run sources changed, as they change.

:class:`RunsWatcher` watches, through watchfiles (Rust notify: inotify on Linux),
the places where something can change cheaply enough to watch:

- the *roots*, where new runs appear: a Guild home's ``runs/`` directory
  non-recursively (one watch, however many runs it holds), a plain runs folder
  recursively (its runs nest at any depth);
- the *active runs*, recursively: those still running or changed recently.

A finished run that has gone quiet is not watched; the monitor's rare reconciling
pass covers it. Roots whose events cannot be trusted are not watched at all but
reported by :meth:`RunsWatcher.polled`, with the reason in
:meth:`RunsWatcher.sources`: network and FUSE mounts (:mod:`.fstype`), a watch
limit reached (``ENOSPC``), a forced setting, watchfiles missing. What is watched
and why a root is polled are decided in :mod:`.watchplan`; this module holds the
watches (one watchfiles watch a thread) and reports on them.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..rest import SourceWatch
from .fstype import inotify_limit_reached
from .watchplan import CLOSED, MISSING, Identity, count_dirs, failure_reason, identity, plan_watch

try:
    import watchfiles
except ImportError:  # pragma: no cover - a dependency; reported, not fatal
    watchfiles = None  # type: ignore[assignment]

__all__ = ["RunsWatcher", "SourceWatch"]

log = logging.getLogger(__name__)

# Counting directories to estimate the watches held stops here: an estimate.
_WALK_CAP = 200_000
# A path that vanished between the check and the watch: retry this many times.
_RETRIES = 5


class _Group:
    """One watchfiles watch over a set of paths, in its own daemon thread, until
    its stop event is set."""

    def __init__(self, key: frozenset[Identity], recursive: bool) -> None:
        self.key = key
        self.paths = sorted(path for path, _dev, _ino in key)
        self.path_set = frozenset(self.paths)
        self.recursive = recursive
        self.stop = threading.Event()
        # A watched directory was deleted: its watch went with it, and a directory
        # re-created there may get the same inode number, so the key cannot tell.
        self.lost = False
        self.failed = ""  # why the watch could not be held: its roots are polled
        self.dirs = len(self.paths)  # watches held, refined by a walk when recursive
        self.thread: threading.Thread | None = None
        # The group this one replaces: stopped once this one watches (or gives up),
        # so that an event in between reaches one or both, never neither.
        self.previous: _Group | None = None
        self.announce: frozenset[str] = frozenset()  # reported once this one watches
        self.ready = False  # watchfiles yielded once: the watch is in place


class RunsWatcher:
    """Watches run sources and calls ``on_change`` with the absolute paths of the
    files and directories that changed (from a watcher thread, one call per batch,
    batched over ``debounce_ms``). ``force_polling`` watches nothing: every root is
    reported as polled.

    :meth:`watch` sets what is watched and may be called at any time; it is cheap
    when nothing changed. A Guild home's ``runs/`` (a root holding ``<id>/.guild/``)
    is watched non-recursively, any other root recursively, and active runs
    recursively unless their root is polled or already watched recursively.
    Roots that do not exist are polled until they do (the next :meth:`watch`).
    A run dir created under a Guild home's ``runs/`` is watched at once (and
    reported again once its watch is in place), until a :meth:`watch` without it.
    When the watch limit is reached, at the start or as watched trees grow, or no
    inotify instance can be made, the roots concerned turn to polling, logged once,
    and the paths of the failed watch are reported to ``on_change``.
    """

    def __init__(
        self,
        on_change: Callable[[set[str]], None],
        *,
        force_polling: bool = False,
        debounce_ms: int = 50,
    ) -> None:
        self._on_change = on_change
        self.force_polling = force_polling
        self.debounce_ms = max(1, int(debounce_ms))
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # a group became ready or ended
        self._closed = False
        # root -> static reason to poll it ("" when it is watched)
        self._static: dict[str, str] = {}
        # root -> whether its active runs are watched in the recursive group
        self._has_runs: dict[str, bool] = {}
        self._guild_roots: frozenset[str] = frozenset()  # roots known to be Guild runs dirs
        self._groups: dict[bool, _Group | None] = {False: None, True: None}
        self._started: list[_Group] = []  # every group whose thread may still run
        self._dir_counts: dict[Identity, int] = {}
        self._logged: set[str] = set()

    # -- what is watched -------------------------------------------------------

    def watch(self, roots: Sequence[str], active_runs: Sequence[str]) -> None:
        """Watch ``roots`` (where new runs appear) and ``active_runs`` (run dirs
        watched recursively), replacing what was watched. A group whose set of
        directories is unchanged (same paths, same inodes) keeps its watch."""
        if self._closed:
            return
        plan = plan_watch(
            roots,
            active_runs,
            force_polling=self.force_polling,
            installed=watchfiles is not None,
            guild_roots=self._guild_roots,
        )
        self._guild_roots = plan.guild_roots
        with self._lock:
            if self._closed:
                return
            self._static = plan.static
            self._has_runs = plan.has_runs
            # Roots and runs newly watched are reported once their watch is in place:
            # what appeared in them between the monitor's listing and the watch would
            # be missed otherwise (a root reported means a full pass).
            for recursive, key in ((False, plan.flat), (True, plan.deep)):
                added = frozenset(path for path, _dev, _ino in key - self._reported(recursive))
                self._replace(recursive, key, added)

    def _reported(self, recursive: bool) -> frozenset[Identity]:
        """What the current group of that kind watches and has reported (its paths
        still to announce are not): paths it does not cover are announced anew.
        Called with the lock held."""
        current = self._groups[recursive]
        if current is None or current.failed:
            return frozenset()
        if current.ready:
            return current.key
        return frozenset(i for i in current.key if i[0] not in current.announce)

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every current watch is in place and has
        reported what it announces, or has failed or ended; whether it came to that.
        A listing that starts after this misses nothing the watches would not tell."""

        def settled() -> bool:
            return all(
                group is None
                or group.ready
                or bool(group.failed)
                or group.thread is None
                or not group.thread.is_alive()
                for group in self._groups.values()
            )

        with self._settled:
            return self._settled.wait_for(lambda: self._closed or settled(), timeout)

    def _replace(
        self,
        recursive: bool,
        key: frozenset[Identity],
        announce: frozenset[str] = frozenset(),
    ) -> None:
        """Starts a group for ``key`` unless the current one watches just that (and
        nothing is to be announced); the current one stops once the new one
        watches. Called with the lock held."""
        current = self._groups[recursive]
        if current is not None and current.key == key and not current.lost and not announce:
            return
        group = _Group(key, recursive) if key else None
        self._groups[recursive] = group
        self._started = [g for g in self._started if g.thread is None or g.thread.is_alive()]
        if group is None:
            if current is not None:
                current.stop.set()
            return
        group.previous = current
        group.announce = announce
        kind = "runs" if recursive else "roots"
        group.thread = threading.Thread(
            target=self._run, args=(group,), name=f"guildimg-fswatch-{kind}", daemon=True
        )
        self._started.append(group)
        group.thread.start()

    def _adopt(self, runs: set[str]) -> None:
        """Watches new run dirs that appeared under a Guild home's ``runs/``, from
        their first files on (the monitor's next :meth:`watch` keeps them)."""
        with self._lock:
            current = self._groups[True]
            if self._closed or not runs or (current is not None and current.failed):
                return  # a failed group is retried on the next watch() with a new set
            kept = {i for i in (current.key if current else ()) if i[0] not in runs}
            added = {i for i in map(identity, runs) if i is not None}
            for path, _dev, _ino in added:
                self._has_runs[os.path.dirname(path)] = True
            # What the current group has still to announce, the new one announces.
            unsaid = current.announce if current is not None and not current.ready else frozenset()
            self._replace(True, frozenset(kept | added), unsaid | {p for p, _d, _i in added})

    # -- the watcher threads ---------------------------------------------------

    def _run(self, group: _Group) -> None:
        try:
            self._run_watch(group)
        finally:
            if group.previous is not None:
                group.previous.stop.set()
                group.previous = None
            with self._settled:
                self._settled.notify_all()

    def _run_watch(self, group: _Group) -> None:
        if group.recursive:
            self._estimate(group)
        paths = group.paths
        ignore_denied = False
        for attempt in range(_RETRIES):
            paths = [p for p in paths if os.path.isdir(p)]
            if not paths or group.stop.is_set():
                return
            try:
                self._listen(group, paths, ignore_denied)
                return
            except FileNotFoundError as e:
                if attempt == _RETRIES - 1:
                    self._fail(group, e)
                    return
                # A run deleted between watch() and here: watch the others.
                log.debug("fswatch: a watched path vanished, retrying", exc_info=True)
                group.stop.wait(0.1)
            except PermissionError as e:
                if ignore_denied:
                    self._fail(group, e)
                    return
                # Watchfiles' own option skips unreadable directories but also hides a
                # watch limit reached: taken only when a directory cannot be read.
                log.info("fswatch: %s; watching the readable directories", e)
                ignore_denied = True
            except Exception as e:  # noqa: BLE001 - any failure means: poll these roots
                self._fail(group, e)
                return

    def _listen(self, group: _Group, paths: list[str], ignore_denied: bool) -> None:
        assert watchfiles is not None
        for changes in watchfiles.watch(
            *paths,
            watch_filter=None,  # every file counts (the default skips dotfiles' kin)
            recursive=group.recursive,
            stop_event=group.stop,
            debounce=self.debounce_ms,
            step=max(1, min(50, self.debounce_ms // 2)),
            force_polling=False,  # polled roots are the monitor's to poll, not ours
            ignore_permission_denied=ignore_denied,
            raise_interrupt=False,
            # The first yield, changes or none, says the watch is in place: soon, as
            # the first full pass waits for it (idle, 100 ms costs 0.04 % of a core
            # more than 500 ms for two watches).
            rust_timeout=100,
            yield_on_timeout=True,
        ):
            if group.stop.is_set():
                return
            first = not group.ready
            if first:
                if group.previous is not None:
                    group.previous.stop.set()
                    group.previous = None
                # What was written before the watch was in place.
                changes = changes | {(watchfiles.Change.added, p) for p in group.announce}
            changed = {path for _change, path in changes}
            if any(c == watchfiles.Change.deleted and p in group.path_set for c, p in changes):
                group.lost = True
            if changed:
                try:
                    self._on_change(changed)
                except Exception:  # the watch outlives a bad callback
                    log.warning("fswatch: on_change failed", exc_info=True)
            if first:
                # Ready once its announcement is queued (see wait_ready).
                with self._settled:
                    group.ready = True
                    self._settled.notify_all()
            if group.recursive:
                self._check_limit(changes)
            else:
                new = {
                    path
                    for change, path in changes
                    if change == watchfiles.Change.added
                    and os.path.dirname(path) in group.path_set
                    and os.path.isdir(path)
                }
                if new:
                    self._adopt(new)

    @staticmethod
    def _check_limit(changes: set[tuple[Any, str]]) -> None:
        # notify adds the watches of new directories itself and drops the error
        # when the limit is reached: a probe says whether that can have happened.
        for change, path in changes:
            if change == watchfiles.Change.added and os.path.isdir(path):
                if inotify_limit_reached(path):
                    raise OSError(errno.ENOSPC, "inotify watch limit reached", path)
                return

    def _fail(self, group: _Group, error: Exception) -> None:
        reason = failure_reason(error)
        with self._lock:
            group.failed = reason
            first = reason not in self._logged
            self._logged.add(reason)
            self._settled.notify_all()
        if first:
            log.warning("fswatch: %s; polling %s instead", reason, group.paths, exc_info=error)
        if self._closed or group.stop.is_set():
            return  # replaced or closed: the group that follows speaks for these paths
        # Its paths are polled from now on, and what they wrote since the last pass
        # made no event: reported as changed, so the owner looks now (and learns they
        # are polled) rather than at its next reconciling pass.
        try:
            self._on_change(set(group.paths))
        except Exception:
            log.warning("fswatch: on_change failed", exc_info=True)

    def _estimate(self, group: _Group) -> None:
        # inotify holds one watch per directory of a recursive watch: count them
        # once per set (reusing counts of paths already counted), capped.
        total = 0
        for key in sorted(group.key):
            if group.stop.is_set():
                return
            with self._lock:
                count = self._dir_counts.get(key)
            if count is None:
                count = count_dirs(key[0], _WALK_CAP)
            with self._lock:
                self._dir_counts[key] = count
            total += count
            if total >= _WALK_CAP:
                break
        with self._lock:
            self._dir_counts = {k: v for k, v in self._dir_counts.items() if k in group.key}
            group.dirs = total

    # -- what it says ----------------------------------------------------------

    def _reason(self, root: str) -> str:
        reason = self._static.get(root, MISSING)
        if reason:
            return reason
        recursive = root not in self._guild_roots
        groups: Iterable[_Group | None] = (
            [self._groups[True]]
            if recursive
            else [self._groups[False]] + ([self._groups[True]] if self._has_runs.get(root) else [])
        )
        return next((g.failed for g in groups if g is not None and g.failed), "")

    def sources(self) -> list[SourceWatch]:
        """How each root of the last :meth:`watch` is watched, in its order."""
        with self._lock:
            reasons = {root: self._reason(root) for root in self._static}
        return [
            SourceWatch(path=root, mode="polling" if reason else "events", reason=reason)
            for root, reason in reasons.items()
        ]

    def polled(self, roots: Iterable[str]) -> list[str]:
        """The ones of ``roots`` that are not watched (see :meth:`sources`): the
        monitor polls those on its own interval. A root never passed to
        :meth:`watch` counts as polled."""
        with self._lock:
            return [
                root
                for root in roots
                if self._reason(root if "://" in root else os.path.abspath(root))
            ]

    @property
    def watches(self) -> int:
        """The inotify watches held, best estimate: the directories under watch."""
        with self._lock:
            return sum(g.dirs for g in self._groups.values() if g is not None and not g.failed)

    def close(self) -> None:
        """Stops watching and joins the watcher threads. Idempotent."""
        with self._lock:
            self._closed = True
            self._settled.notify_all()
            groups = self._started
            self._started = []
            self._groups = {False: None, True: None}
            self._static = {root: CLOSED for root in self._static}
        for group in groups:
            group.stop.set()
        for group in groups:
            if group.thread is not None:
                group.thread.join(10.0)
