"""Which runs TensorBoard shows: a :class:`Selection`, and ``PUT selection`` bodies.

- ``auto`` (the default): every run while there are at most ``limit`` (0: no limit),
  else the ``limit`` newest plus every running run (:func:`auto_choice`);
- ``runs``: the runs named by their keys (a run that is gone is simply not shown);
- ``filter``: the runs ``GET runs?q=<filter>`` keeps
  (:func:`~jupyter_guildimg.engine.catalog.run_matches`), as runs come and go.

:class:`~.view.TensorBoardView` holds the selection and keeps TensorBoard's view dir
to it; :func:`parse_change` checks what a client asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from .. import rest
from .catalog import identity_fields, run_key, run_matches
from .runlog import RunView

__all__ = [
    "DEFAULT_LIMIT",
    "MODES",
    "Selection",
    "SelectionError",
    "auto_choice",
    "parse_change",
]

DEFAULT_LIMIT = 200
"""``auto``'s number of runs, for every caller that does not choose."""
MODES: tuple[rest.SelectionMode, ...] = get_args(rest.SelectionMode)
_RUNNING = "running"
_BODY_KEYS = ("mode", "runs", "filter")
_EXPECTED = (
    '{"mode": "auto"}, {"mode": "runs", "runs": ["<run key>", ...]} '
    'or {"mode": "filter", "filter": "<text>"}'
)


class SelectionError(ValueError):
    """A selection that cannot be made: a bad body, or a run key that names no run (or
    several). The message says which, for the user."""


def auto_choice(views: Sequence[RunView], limit: int) -> list[RunView]:
    """``views`` (newest first) when there are at most ``limit`` of them or ``limit``
    is 0, else the ``limit`` newest plus every running run, in the same order."""
    if not limit or len(views) <= limit:
        return list(views)
    return [view for i, view in enumerate(views) if i < limit or view.run.status == _RUNNING]


@dataclass(frozen=True)
class Selection:
    """Which runs TensorBoard shows: ``mode`` "auto" (see :func:`auto_choice`, with
    ``limit``), "runs" (those whose key is in ``runs``) or "filter" (those
    :func:`run_matches` keeps for ``filter``)."""

    mode: rest.SelectionMode = "auto"
    runs: tuple[str, ...] = ()
    filter: str = ""
    limit: int = DEFAULT_LIMIT

    def choose(self, views: Sequence[RunView]) -> list[RunView]:
        """The views selected among ``views`` (newest first), in their order."""
        if self.mode == "runs":
            wanted = set(self.runs)
            return [view for view in views if run_key(view.run) in wanted]
        if self.mode == "filter":
            return [view for view in views if run_matches(identity_fields(view), self.filter)]
        return auto_choice(views, self.limit)


def parse_change(body: object) -> rest.SelectionChange:
    """``body`` (decoded JSON) checked as a ``PUT selection`` body; SelectionError
    saying what is wrong otherwise."""
    if not isinstance(body, dict):
        raise SelectionError(f"expected a JSON body {_EXPECTED}")
    unknown = sorted(str(key) for key in body if key not in _BODY_KEYS)
    if unknown:
        raise SelectionError(f"unknown key {unknown[0]!r} in the selection: expected {_EXPECTED}")
    mode = body.get("mode")
    if mode not in MODES:
        choices = ", ".join(repr(m) for m in MODES)
        raise SelectionError(f"mode must be one of {choices}, not {mode!r}")
    change: rest.SelectionChange = {"mode": mode}
    runs, text = body.get("runs"), body.get("filter")
    if mode != "runs" and runs is not None:
        raise SelectionError(f"runs goes with mode 'runs', not {mode!r}")
    if mode != "filter" and text is not None:
        raise SelectionError(f"filter goes with mode 'filter', not {mode!r}")
    if mode == "runs":
        if not isinstance(runs, list) or not all(isinstance(k, str) and k for k in runs):
            raise SelectionError("mode 'runs' needs runs, a list of run keys (non-empty strings)")
        change["runs"] = runs
    if mode == "filter":
        if not isinstance(text, str):
            raise SelectionError("mode 'filter' needs filter, a string")
        change["filter"] = text
    return change
