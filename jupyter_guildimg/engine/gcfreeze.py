"""The monitor's long-lived objects kept out of the garbage collector's way.

A monitor of 10,000 runs holds some 550,000 objects that live as long as it does
(each run's log: its mirror, summaries, images, revisions). CPython's full
collections walk every object not frozen, holding the interpreter lock: 0.3 s at
that size, stalling every thread of the process (in a server, Jupyter's event
loop), now and then, forever; during a first index, one every few hundred runs.

With ``freeze_after_index`` (the server extension's choice, in a process of its
own) the monitor moves what is alive to the collector's permanent generation
(``gc.freeze()``): before and after the first full pass lists its runs, at each
batch the index publishes and every :data:`FREEZE_EVERY` runs it adds
(:func:`freeze`, :func:`freeze_every`), and once a full pass has indexed many runs,
after one last collection (:func:`freeze_long_lived`). Frozen objects are still
freed when nothing refers to them; only cycles among them would stay.
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["FREEZE_EVERY", "freeze", "freeze_every", "freeze_long_lived"]

log = logging.getLogger(__name__)

#: While indexing, the objects alive are frozen after each this many new runs: with
#: a freeze only at each batch (up to 3,200 runs) full collections stalled every
#: thread 50-100 ms, a few times a batch.
FREEZE_EVERY = 200


def freeze() -> None:
    """Every object alive now out of later collections."""
    gc.freeze()


def freeze_every(added: int) -> None:
    """:func:`freeze` when ``added`` (new runs indexed so far) is a multiple of
    :data:`FREEZE_EVERY`."""
    if added % FREEZE_EVERY == 0:
        gc.freeze()


def freeze_long_lived(runs: int) -> None:
    """Collect once, then :func:`freeze`: after an index of ``runs`` runs."""
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    # Not gc.get_freeze_count(): it walks every frozen object (80 ms at 10,000 runs).
    log.info(
        "Indexed %d runs; their objects left out of garbage collection (%.2f s)",
        runs,
        time.monotonic() - started,
    )
