"""The runs ``guildimg tensorboard`` shows: :class:`RunFilter`, made from the
command's "runs shown" options, keeps a run when every kind of filter given keeps
it; :func:`since` reads ``--started-since``, and :data:`STATUSES` is what
``--status`` takes."""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass

from .. import rest
from ..engine.catalog import run_key
from ..engine.runs import Run

__all__ = ["STATUSES", "RunFilter", "since"]

#: What --status takes: Guild's statuses (a plain run is running or completed).
STATUSES = ("running", "completed", "error", "terminated", "pending", "staged")


@dataclass(frozen=True)
class RunFilter:
    """The runs ``guildimg tensorboard`` shows, in Guild's spirit: each kind of filter
    given must keep a run (an operation or label holding one of the texts given,
    ignoring case; one of the statuses; started at or after ``started_since``, seconds
    since the epoch; an id, or an id prefix of at least
    :data:`~jupyter_guildimg.rest.MIN_PREFIX` characters, among ``runs``)."""

    operations: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    started_since: float | None = None
    runs: tuple[str, ...] = ()

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunFilter | None:
        """The filter the command line asks for; None when it names none."""
        found = cls(
            tuple(text.lower() for text in args.operation),
            tuple(text.lower() for text in args.label),
            tuple(args.status),
            args.started_since,
            tuple(args.run),
        )
        return None if found == cls() else found

    def __call__(self, run: Run) -> bool:
        operation, label = run.operation.lower(), run.label.lower()
        return (
            (not self.operations or any(text in operation for text in self.operations))
            and (not self.labels or any(text in label for text in self.labels))
            and (not self.statuses or run.status in self.statuses)
            and (
                self.started_since is None
                or (run.started is not None and run.started >= self.started_since)
            )
            and (not self.runs or any(_names(key, run) for key in self.runs))
        )


def _names(key: str, run: Run) -> bool:
    """Whether ``key`` names ``run``: its id, its key in URLs, or a prefix of its id."""
    if key in (run.id, run_key(run)):
        return True
    return len(key) >= rest.MIN_PREFIX and run.id.startswith(key)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since(text: str, now: float | None = None) -> float:
    """``--started-since``: seconds since the epoch, from an age ("90s", "30m", "1h",
    "2d", "1w": that long before ``now``, default the command's start) or an ISO date or
    time ("2026-12-01", "2026-12-01T14:30"; local time unless it names its zone)."""
    # Every error is an ArgumentTypeError, so argparse's message never shows this
    # function's name.
    text = text.strip()
    number, unit = text[:-1], text[-1:].lower()
    if unit in _UNITS and number.replace(".", "", 1).isdigit():
        return (time.time() if now is None else now) - float(number) * _UNITS[unit]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an age such as 30m, 1h, 2d or 1w, or an ISO date, not {text!r}"
        ) from None
