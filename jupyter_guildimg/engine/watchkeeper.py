"""What the monitor's watcher is told: the roots where new runs appear, and the runs
worth a watch.

The scheduler's thread (:mod:`.scheduler`) owns a :class:`WatchKeeper` and calls
:meth:`WatchKeeper.update` after every pass. The roots are watched from the start
(runs made during a long first index make events); the runs watched are the
*active* ones (:meth:`.targets.RunTargets.active`: running, or changed within
``RECENT``). Which runs are active is worked out from every known run after a full
pass and every :data:`PRUNE_SECONDS`; after a targeted pass the watched runs only
gain those the pass found active, so its cost does not grow with the home. Runs
that went quiet leave the watch at most every :data:`PRUNE_SECONDS`: each change of
the watched set re-adds every watch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .. import rest

if TYPE_CHECKING:
    from .monitor import RunsMonitor

__all__ = ["PRUNE_SECONDS", "WATCH_READY_WAIT", "WatchKeeper", "Watcher"]

log = logging.getLogger(__name__)

#: Runs that went quiet leave the watch at most this often (runs that become active
#: join it at once): each change of the watched set re-adds every watch.
PRUNE_SECONDS = 60.0
#: Seconds the first full pass waits for the watches to be in place, at most.
WATCH_READY_WAIT = 5.0


class Watcher(Protocol):
    """What the monitor needs from a file-system watcher (:mod:`.fswatch`'s
    ``RunsWatcher``, whose ``on_change`` is the monitor's ``notify_changed``)."""

    @property
    def watches(self) -> int: ...

    def watch(self, roots: Sequence[str], active_runs: Sequence[str]) -> None: ...

    def polled(self, roots: Sequence[str]) -> list[str]: ...

    def sources(self) -> Sequence[Any]: ...

    def wait_ready(self, timeout: float) -> bool: ...


class WatchKeeper:
    """Keeps ``watcher`` (``None``: nothing to keep) told what to watch for the
    monitor ``monitor()`` returns; ``notify(paths)`` queues paths for a targeted
    pass. Used from the scheduler's thread."""

    def __init__(
        self,
        monitor: Callable[[], RunsMonitor],
        watcher: Watcher | None,
        notify: Callable[[Iterable[str]], None],
    ) -> None:
        self._monitor = monitor
        self.watcher = watcher
        self._notify = notify
        self._watched: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # roots, active
        self._replanned = 0.0  # when the watched set last changed (monotonic)
        self._computed = 0.0  # when the active runs were last worked out from all runs

    def roots(self) -> list[str] | None:
        """Where new runs appear, one per source (a Guild home's ``runs`` dir, watched
        alone; a runs folder, watched whole); ``None`` when the monitor cannot tell
        its sources."""
        sources = self._monitor().sources()
        return None if sources is None else [source.watch_root for source in sources]

    def polling(self) -> bool:
        """Whether some root is polled: without a watcher, when the monitor cannot
        tell its sources (a plain callback), or when the watcher polls a root."""
        if self.watcher is None:
            return True
        roots = self.roots()
        if roots is None:
            return True
        try:
            return bool(self.watcher.polled(roots))
        except Exception:
            log.warning("The watcher could not say which roots it polls", exc_info=True)
            return True

    def await_ready(self) -> None:
        """Before the first full pass: let the watches just asked for be put in place
        (at most :data:`WATCH_READY_WAIT` s), so that what they announce (what appeared
        before they watched) is queued before the pass and covered by it, not by a
        second full pass right after."""
        watcher = self.watcher
        if watcher is None:
            return
        try:
            if not watcher.wait_ready(WATCH_READY_WAIT):
                log.info("The watches are not in place after %s s; indexing", WATCH_READY_WAIT)
        except Exception:
            log.warning("The watcher could not say whether it watches", exc_info=True)

    def update(self, full: bool = True) -> None:
        """Tell the watcher the roots and active runs, if they changed. Dirs that just
        got a watch while not yet runs (a Guild run being created) are read once more:
        what was written before the watch was added made no event.

        After a targeted pass (not ``full``) the watched runs only gain those that
        became active; which runs are active is worked out from every known run
        after a full pass and every :data:`PRUNE_SECONDS` (at 100,000 runs that
        took longer than the targeted pass itself)."""
        watcher = self.watcher
        roots = self.roots()
        if watcher is None or roots is None:
            return
        monitor = self._monitor()
        targets = monitor.targets
        became_active = targets.take_fresh()
        now = time.monotonic()
        if full or self._watched is None or now - self._computed >= PRUNE_SECONDS:
            active = tuple(targets.active(monitor.known_runs()))
            self._computed = now
        else:
            active = tuple(sorted(set(self._watched[1]) | became_active))
        wanted = (tuple(roots), active)
        if wanted == self._watched:
            return
        before = set(self._watched[1]) if self._watched is not None else set()
        if (
            self._watched is not None
            and wanted[0] == self._watched[0]
            and before.issuperset(active)
            and now - self._replanned < PRUNE_SECONDS
        ):
            # Only runs gone quiet: a watch left on them costs nothing, while a new
            # watch set costs one watch a directory again (at 14,000 runs that had
            # ended within RECENT, one rebuild a second as each aged out kept a core
            # busy). They are dropped at most every PRUNE_SECONDS.
            return
        self._replanned = now
        try:
            watcher.watch(list(roots), list(active))
        except Exception:
            log.warning("The watcher could not adjust its watches", exc_info=True)
            return
        self._watched = wanted
        pending = set(targets.pending)
        fresh = [d for d in active if d not in before and d in pending]
        if fresh:
            self._notify(fresh)

    def status(self, reconcile_interval: float) -> rest.WatchStatus | None:
        """``{"sources", "watches", "reconcile_interval"}``; ``None`` without a
        watcher."""
        watcher = self.watcher
        if watcher is None:
            return None
        try:
            sources = list(watcher.sources())
            watches = int(watcher.watches)
        except Exception:
            log.warning("The watcher could not report its state", exc_info=True)
            sources, watches = [], 0
        return {
            "sources": sources,
            "watches": watches,
            "reconcile_interval": round(reconcile_interval, 3),
        }
