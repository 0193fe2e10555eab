"""The change feed behind ``GET changes``: long polls on the server's event loop
that end once the monitor's change counter goes up, woken from the thread that
heard of it (the monitor's own, or the reader of the monitor's process)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """Long polls on the monitor's change counter, read through ``generation`` (the
    only one: this feed keeps none of its own). :meth:`announce` is called after the
    counter went up, from any thread; :meth:`wait` runs on the server's event loop."""

    def __init__(self, generation: Callable[[], int]) -> None:
        self._generation = generation
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def generation(self) -> int:
        return self._generation()

    def announce(self) -> None:
        """Wake the waiters: the generation went up (thread-safe)."""
        with self._lock:
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, since: int, timeout: float) -> int:
        """The generation, once it is past ``since`` or ``timeout`` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                self._loop = loop
                # The counter goes up before announce is called, which takes this
                # lock: a change after this check finds the event made below.
                if self.generation > since:
                    return self.generation
                if self._event is None:
                    self._event = asyncio.Event()
                event = self._event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self.generation
            # A wake queued by an earlier change can set a new event before the
            # counter moves again: check the counter once more, until the deadline.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
