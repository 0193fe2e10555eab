"""A Guild home's cold listing made in a child process.

Listing a Guild home reads half a dozen small files a run (``opref`` and the
attributes), a few hundred microseconds of Python a run: 2.2 s of CPU for 10,000
runs, with every reader thread holding the server's interpreter lock in turn. While
it ran at a server's start, Jupyter's own requests waited on the lock (p95 four
times a server without the extension). Read in a child, the same listing comes back
as pickles of :data:`RUNS_PER_PICKLE` runs each, loaded one at a time: 10,000 runs
in about 60 ms, never more than about half a millisecond without a pause in which
the server's event loop can take the lock (as one pickle, they held it for 0.27 s
in a server).

:func:`list_in_child` runs :class:`~.runs.GuildHome`'s own listing in a ``python
-c`` child at ``nice`` 19, with the environment TensorBoard gets (no token), and
hands back the runs and the cache a warm listing goes on from. The home asks for it
(:meth:`~.runs.GuildHome.list_runs`) only when many runs are not cached and the
caller allowed it with :data:`child_listing`: the monitor does, for the server
extension (``index_process``). A child that cannot start or fails is reported in the
result, and the caller lists in its own process: nothing is lost, it is only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .processes import describe_exit
from .pychild import start_python_child
from .runrecord import RunList

__all__ = [
    "LISTING_TIMEOUT",
    "LIST_IN_CHILD_AT",
    "RUNS_PER_PICKLE",
    "ChildListing",
    "child_listing",
    "child_main",
    "list_in_child",
]

log = logging.getLogger(__name__)

#: A listing that would read at least this many runs not cached is made in a child
#: (when :data:`child_listing` allows it): the child's start, ~0.3 s of imports, is
#: only worth it for many.
LIST_IN_CHILD_AT = 1_000
#: Seconds a child listing may take before it is given up (and the caller lists in
#: its own process): far more than a local home of 100,000 runs needs.
LISTING_TIMEOUT = 600.0

#: Whether a cold listing may be made in a child, in the current context: set by
#: the monitor around its listing, off everywhere else (tests, scripts, a kernel).
child_listing: ContextVar[bool] = ContextVar("guildimg_child_listing", default=False)

#: The child's runs come back in pickles of this many: each loads in about 0.4 ms.
RUNS_PER_PICKLE = 100

_STDERR_KEPT = 2_000  # characters of the child's stderr kept for the message
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildListing:
    """How a child listing went: ``runs`` (a :class:`~.runrecord.RunList`) and
    ``cache`` (the home's, for the listings after it) when it worked, else both
    ``None`` and ``message`` says why."""

    runs: Any = None
    cache: dict[str, Any] | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.runs is not None


def list_in_child(home: str, timeout: float = LISTING_TIMEOUT) -> ChildListing:
    """List the Guild home at ``home`` in a child process; never raises for a
    child that cannot start, fails, times out or answers garbage."""
    # The child names the home's class itself: this module does not import it.
    package = __name__.rsplit(".", 1)[0]
    statement = f"from {package} import listchild, runs; listchild.child_main(runs.GuildHome)"
    started = start_python_child("the listing child", statement, [home])
    process = started.process
    if process is None:
        return ChildListing(message=started.message)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return ChildListing(message=f"the listing child process took over {timeout:.0f} s")
    except BaseException:
        process.kill()  # the monitor is going away: its child goes with it
        process.communicate()
        raise
    stderr = err.decode(errors="replace").strip()[-_STDERR_KEPT:]
    if process.returncode != 0:
        how = describe_exit(process.returncode)
        return ChildListing(message=f"the listing child process {how}: {stderr}".rstrip(": "))
    try:
        runs, cache = _loaded(out)
    except Exception as e:  # whatever it sent, the caller lists in its own process
        log.debug("The listing child answered garbage", exc_info=True)
        return ChildListing(message=f"the listing child process answered garbage: {e!r}")
    if stderr:
        log.info("listing child: %s", stderr)
    return ChildListing(runs, cache)


def _loaded(out: bytes) -> tuple[RunList, dict[str, Any]]:
    """The listing and the cache the child wrote (see :func:`child_main`)."""
    unreadable, pickles = pickle.loads(out)
    runs, cache = RunList(unreadable=unreadable), {}
    for data in pickles:  # between two, the GIL can go to the event loop
        for name, signature, run in pickle.loads(data):
            runs.append(run)
            if signature is not None:  # the same object: a warm listing keeps it
                cache[name] = (signature, run)
    return runs, cache


# -- the child -----------------------------------------------------------------


def _die_with_parent() -> None:
    # Linux: killed when the server is, rather than finishing a listing nobody reads.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


def child_main(home_class: Callable[[str], Any]) -> None:
    """The child: lists the home ``home_class(sys.argv[1])`` and writes on stdout,
    pickled, the paths it could not read and a list of pickles of up to
    :data:`RUNS_PER_PICKLE` ``(name, signature, run)`` each, the runs in the
    listing's order (``name`` and ``signature``, the home's cache entry of the run,
    ``None`` for a run not cached); exits the process."""
    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    home = home_class(sys.argv[1])
    runs = home.list_runs()
    cached = {id(run): (name, signature) for name, (signature, run) in home.cache_state().items()}
    rows = [(*cached.get(id(run), (None, None)), run) for run in runs]
    pickles = [
        pickle.dumps(rows[i : i + RUNS_PER_PICKLE], pickle.HIGHEST_PROTOCOL)
        for i in range(0, len(rows), RUNS_PER_PICKLE)
    ]
    data = pickle.dumps((runs.unreadable, pickles), pickle.HIGHEST_PROTOCOL)
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(0)  # the monitor no longer wants it
    os._exit(0)
