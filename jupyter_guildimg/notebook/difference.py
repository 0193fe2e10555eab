"""The difference part of the comparison (:mod:`.compare`): which two cells (A and B),
a tolerance and an amplification, the difference image with its colour map, and the
readout of how many pixels differ and by how much (:mod:`~..engine.imagediff`)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from ..engine.imagediff import ImageDiff, ImageDiffError, colour_bar, diff_bytes, to_png, top_of_map

__all__ = ["AMPLIFY_CHOICES", "MIN_SHOWN_WIDTH", "PIXELATED_CLASS", "DifferenceView", "Side"]

log = logging.getLogger(__name__)

#: The Amplify choices: 0 is "auto" (the largest difference is the top of the map).
AMPLIFY_CHOICES = (("auto", 0.0), ("×1", 1.0), ("×4", 4.0), ("×16", 16.0), ("×64", 64.0))
#: The width a difference smaller than this is enlarged to (crisp: one block per pixel).
MIN_SHOWN_WIDTH = 384
#: Enlarged images of the comparison keep their pixels sharp (a pixel view, not a photo).
PIXELATED_CLASS = "guildimg-pixelated"
_STYLE = f"<style>img.{PIXELATED_CLASS} {{ image-rendering: pixelated; }}</style>"


@dataclass(frozen=True)
class Side:
    """One image of the difference: the run's name and id, and the revision shown
    (its number and the API's ``revision`` counter)."""

    name: str
    run_id: str
    number: int
    counter: int


class DifferenceView:
    """The difference of two cells (``box``). ``names`` label the cells for the A and
    B choices (A is the first, B the second by default); ``on_change`` is called when
    the user changes a choice, the tolerance or the amplification."""

    def __init__(self, names: Sequence[str], on_change: Callable[[], None]) -> None:
        self._key: tuple[Any, ...] | None = None
        self.diff: ImageDiff | None = None
        options = [(f"{i + 1}: {name}", i) for i, name in enumerate(names)]
        self.pick_a = widgets.Dropdown(options=options, value=0, description="A")
        self.pick_b = widgets.Dropdown(
            options=options, value=min(1, len(options) - 1), description="B"
        )
        self.threshold = widgets.BoundedIntText(value=0, min=0, max=254, description="Tolerance")
        self.amplify = widgets.Dropdown(options=AMPLIFY_CHOICES, value=0.0, description="Amplify")
        for control in (self.pick_a, self.pick_b, self.threshold, self.amplify):
            control.observe(lambda _change: on_change(), "value")
        self.readout = widgets.HTML()
        self.diff_image = widgets.Image(
            layout=widgets.Layout(max_width="100%", align_self="flex-start")
        )
        self.diff_image.add_class(PIXELATED_CLASS)
        self.colour_bar = widgets.Image(value=to_png(colour_bar(256, 12)), format="png")
        self.bar_labels = widgets.HTML()
        legend = widgets.HBox([widgets.HTML("1"), self.colour_bar, self.bar_labels])
        legend.layout.align_items = "center"
        self.box = widgets.VBox(
            [
                widgets.HTML(f"<b>Difference</b> |A − B|, black where equal{_STYLE}"),
                widgets.HBox([self.pick_a, self.pick_b]),
                widgets.HBox([self.threshold, self.amplify]),
                self.readout,
                legend,
                self.diff_image,
            ],
            layout=widgets.Layout(border="1px solid #ccc", padding="4px"),
        )
        self.box.add_class("guildimg-difference")

    @property
    def chosen(self) -> tuple[int, int]:
        """The indexes of the cells chosen as A and B."""
        return self.pick_a.value, self.pick_b.value

    def update(self, a: Side | None, b: Side | None, fetch: Callable[[str, int], bytes]) -> None:
        """Show the difference of ``a`` and ``b`` (full-size bytes from ``fetch(run_id,
        counter)``); computed again only when a side, the tolerance or the gain changed."""
        if a is None or b is None:
            self._key, self.diff = None, None
            self.diff_image.value = b""
            self.readout.value = "<i>Nothing to compare: a cell shows no image.</i>"
            return
        key = (a, b, self.threshold.value, self.amplify.value)
        if key == self._key:
            return
        self._key = key
        try:
            diff = diff_bytes(
                fetch(a.run_id, a.counter),
                fetch(b.run_id, b.counter),
                threshold=self.threshold.value,
                amplify=self.amplify.value or None,
            )
        except ImageDiffError as e:
            log.debug("No difference of %s and %s: %s", a, b, e)
            self.diff, self.diff_image.value = None, b""
            self.readout.value = f"<b>⚠ {html.escape(str(e))}</b>"
            return
        self.diff = diff
        self.diff_image.format, self.diff_image.value = "png", to_png(diff.image)
        # Actual size (1 image pixel = 1 CSS pixel) up to the width there is; a small
        # image enlarged, so that its pixels can be told apart.
        self.diff_image.layout.width = f"{max(MIN_SHOWN_WIDTH, diff.size[0])}px"
        self.bar_labels.value = f"≥ {top_of_map(diff.gain)} (amplified ×{diff.gain:.3g})"
        sides = " — ".join(
            f"<b>{letter}</b> {html.escape(side.name)} · revision {side.number}"
            for letter, side in (("A", a), ("B", b))
        )
        note = diff.scale_note()
        self.readout.value = f"{sides}<br>{html.escape(diff.summary())}" + (
            f"<br><b>⚠ {html.escape(note)}</b>" if note else ""
        )
