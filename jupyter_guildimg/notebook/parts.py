"""Small helpers the notebook's widgets share: the Images tab (:mod:`.imageview`), the
comparison (:mod:`.compare`), the run list, the header and the panel.

They live here, not in :mod:`.imageview`, so that :mod:`.compare` need not import
the Images tab, which shows comparisons: no import cycle between the two.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import ipywidgets as widgets

from ..engine.images import SIGNATURE_BYTES, ImageError, sniff_format

__all__ = ["COMPARE_WIDTH", "Quiet", "descendants", "image_format", "local_time"]

log = logging.getLogger(__name__)

COMPARE_WIDTH = 512  # the width of the images compared side by side


def image_format(data: bytes) -> str:
    """The ipywidgets Image ``format`` of these bytes, as their signature announces it
    (:func:`~jupyter_guildimg.engine.images.sniff_format`); ``png`` when no known
    signature starts them (the browser then sniffs the image itself)."""
    try:
        return sniff_format(data[:SIGNATURE_BYTES])
    except ImageError:  # empty, cut short or unknown: let the browser try
        log.debug("No image signature; showing it as png", exc_info=True)
        return "png"


def local_time(seconds: float | None, fmt: str) -> str:
    """``seconds`` (since the epoch) as local time in ``fmt``; "" for None."""
    return "" if seconds is None else time.strftime(fmt, time.localtime(seconds))


def descendants(widget: widgets.Widget) -> list[widgets.Widget]:
    """Every widget inside ``widget`` (not itself), deepest first."""
    found: list[widgets.Widget] = []
    for child in getattr(widget, "children", ()):
        found.extend(descendants(child))
        found.append(child)
    return found


class Quiet:
    """Marks, per thread, that this code and not the user is changing a widget's
    value, so the widget's observer can tell the two apart."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self._local.on = True
        try:
            yield
        finally:
            self._local.on = False

    @property
    def active(self) -> bool:
        return getattr(self._local, "on", False)
