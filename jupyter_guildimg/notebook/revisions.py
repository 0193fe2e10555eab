"""Revisions as the user counts them, for the comparison (:mod:`.compare`) and the
image viewer: revision ``N`` of an image is the ``N``-th revision captured of it in
that run, oldest first. Revisions the monitor dropped still count, so a number means
the same capture as the run goes on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import rest

__all__ = ["Shown", "by_number", "nearest_in_time", "number_of", "numbered", "parse_cell_key"]

_KEY_AT = re.compile(r"^(.+)@(\d+)$")


def parse_cell_key(text: str) -> tuple[str, int | None]:
    """``"KEY@N"`` → (KEY, N): the run KEY pinned to its revision N; ``"KEY"`` →
    (KEY, None): the run following the slider."""
    match = _KEY_AT.match(text)
    return (match[1], int(match[2])) if match else (text, None)


@dataclass(frozen=True)
class Shown:
    """The revision a cell shows: its number (1 = the oldest captured), how many were
    captured, and the API's revision (``counter`` for ``rev=``, time, size)."""

    number: int
    count: int
    revision: rest.Revision


def numbered(entry: rest.Image) -> list[Shown]:
    """Every revision of ``entry``, oldest first, with its number."""
    count = entry["dropped"] + len(entry["revisions"])
    return [
        Shown(entry["dropped"] + i + 1, count, revision)
        for i, revision in enumerate(reversed(entry["revisions"]))
    ]


def by_number(entry: rest.Image, number: int) -> Shown:
    """Revision ``number`` of ``entry``, else the nearest one it has."""
    return min(numbered(entry), key=lambda shown: abs(shown.number - number))


def nearest_in_time(entry: rest.Image, when: float) -> Shown:
    """The revision of ``entry`` whose time is nearest to ``when`` (the older on a tie)."""
    return min(
        numbered(entry), key=lambda shown: (abs(shown.revision["time"] - when), shown.number)
    )


def number_of(entry: rest.Image, counter: int) -> int | None:
    """The number of the revision whose API ``revision`` is ``counter`` (None if gone)."""
    return next(
        (shown.number for shown in numbered(entry) if shown.revision["revision"] == counter), None
    )
