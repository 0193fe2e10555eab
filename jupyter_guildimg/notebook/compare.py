"""One image path of several runs side by side, one slider for all of them, and the
pixel difference of two of them: :class:`ImageComparison` (``%guildimg compare``,
:func:`compare`, and "Compare with…" in the panel's image viewer).

A cell is a run, or a run pinned to one of its revisions (``KEY@N``, see
:func:`~.revisions.parse_cell_key`), so two revisions of one run compare as two
cells of it. Revisions are numbered as :mod:`.revisions` says (1 = the oldest).

The slider aligns the cells by revision number (a cell without that number shows
its nearest one) or by time (each cell shows its revision whose time is nearest to
the time chosen; on a tie, the older one).
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from .. import rest
from .backend import Backend, BackendError
from .client import shared_backend
from .difference import PIXELATED_CLASS, DifferenceView, Side
from .parts import COMPARE_WIDTH, Quiet, descendants, image_format, local_time
from .revisions import Shown, by_number, nearest_in_time, numbered, parse_cell_key

__all__ = ["ALIGNMENTS", "ImageComparison", "compare"]

log = logging.getLogger(__name__)

ALIGNMENTS = ("revision", "time")
_CACHED_IMAGES = 256  # fetched cell images kept, so scrubbing back does not fetch again
_CACHED_FULL = 4  # full-size images kept for the difference (they may be large)
_CELL_WIDTH = 256  # the narrowest a cell of the grid gets


class _Cell:
    """One run's cell: its label, image and pin choice (0: follows the slider)."""

    def __init__(self, run_id: str, pin: int | None) -> None:
        self.run_id, self.pin = run_id, pin
        self.run: rest.Run | None = None
        self.entry: rest.Image | None = None
        self.shown: Shown | None = None
        self.label = widgets.HTML()
        self.image = widgets.Image(layout=widgets.Layout(max_width="100%", object_fit="contain"))
        self.pin_choice = widgets.Dropdown(layout=widgets.Layout(width="auto"))
        self.box = widgets.VBox([self.label, self.pin_choice, self.image])
        self.box.add_class("guildimg-compare-cell")

    @property
    def name(self) -> str:
        return self.run["name"] if self.run else self.run_id

    def side(self) -> Side | None:
        """What the cell shows, as a side of the difference."""
        if (shown := self.shown) is None:
            return None
        return Side(self.name, self.run_id, shown.number, shown.revision["revision"])

    def show_pins(self) -> None:
        """The pin choices: following the slider, or one of the revisions."""
        numbers = [shown.number for shown in numbered(self.entry)] if self.entry else []
        if self.pin is not None and self.pin not in numbers:
            numbers = sorted({*numbers, self.pin})
        options = [("follows the slider", 0)] + [(f"pinned to revision {n}", n) for n in numbers]
        if tuple(self.pin_choice.options) != tuple(options):
            self.pin_choice.options = options
        self.pin_choice.value = self.pin or 0


class ImageComparison(widgets.VBox):
    """The image ``path`` of the runs ``keys`` (run keys as the backend's run lookup
    takes them: ids or unique prefixes; ``KEY@N`` pins a cell to revision N) in a
    wrapping grid, one slider for all (``align``: "revision" or "time"; ``revision``:
    the number to start at, else the newest), and the difference of two cells.

    ``path`` None: the first path the runs share. ValueError (one line) when a key
    names no run or several, or no run has the path. ``lock`` serializes with a panel
    holding this view; ``on_close`` adds a Close button calling it. :meth:`reload`
    reads the revisions again (the slider stays unless it was at the newest)."""

    def __init__(
        self,
        backend: Backend,
        keys: Sequence[str],
        path: str | None = None,
        *,
        align: str = "revision",
        revision: int | None = None,
        lock: threading.RLock | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if align not in ALIGNMENTS:
            raise ValueError(f"align must be 'revision' or 'time', not {align!r}")
        if not keys:
            raise ValueError("name at least one run to compare")
        self.backend = backend
        self._lock = lock or threading.RLock()
        self._quietly = Quiet()
        self._images: dict[tuple[str, int, int | None], bytes] = {}
        specs = [(self._resolve(key), pin) for key, pin in map(parse_cell_key, keys)]
        self.cells = [_Cell(run_id, pin) for run_id, pin in specs]
        listings = self._listings()
        self.path = path if path is not None else self._common_path(listings)
        self._apply(listings)
        if all(cell.entry is None for cell in self.cells):
            raise ValueError(f"none of these runs has an image {self.path!r}")

        self.title = widgets.HTML()
        self.align = widgets.ToggleButtons(
            options=[("By revision", "revision"), ("By time", "time")], value=align
        )
        self.align.observe(self._on_align, "value")
        self.slider = widgets.SelectionSlider(options=[("–", 0)], continuous_update=False)
        self.slider.layout.width = "95%"
        self.slider.observe(self._on_slider, "value")
        self.reload_button = widgets.Button(description="Reload", icon="refresh")
        self.reload_button.on_click(lambda _: self.reload())
        controls = [self.title, self.align, self.reload_button]
        if on_close is not None:
            close = widgets.Button(description="Close", icon="times")
            close.on_click(lambda _: on_close())
            controls.append(close)
        self.grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({_CELL_WIDTH}px, 1fr))",
                grid_gap="8px",
            )
        )
        for cell in self.cells:
            cell.pin_choice.observe(lambda change, cell=cell: self._on_pin(cell, change), "value")
        self.grid.children = tuple(cell.box for cell in self.cells)

        self.difference = DifferenceView(
            [cell.name for cell in self.cells], self._on_difference_control
        )
        super().__init__(
            children=[widgets.HBox(controls), self.slider, self.grid, self.difference.box]
        )
        self.add_class("guildimg-compare")
        with self._lock:
            self._render(start=revision)

    # -- public -----------------------------------------------------------------

    def reload(self) -> None:
        """Read the runs' revisions again and show them (a run gone says so)."""
        with self._lock:
            self._apply(self._listings())
            self._render()

    def show(self, value: float) -> None:
        """Move the slider to ``value`` (a revision number, or a time in seconds since
        the epoch), or to its nearest option."""
        with self._lock:
            options = [v for _label, v in self.slider.options]
            self.slider.value = min(options, key=lambda option: abs(option - value))

    def close(self) -> None:
        """Close every widget of the comparison."""
        for widget in descendants(self):
            widget.close()
        super().close()

    # -- runs and their revisions -------------------------------------------------

    def _resolve(self, key: str) -> str:
        return self.backend.run_id(key)

    def _listings(self) -> dict[str, rest.RunImages | None]:
        listings: dict[str, rest.RunImages | None] = {}
        for cell in self.cells:
            if cell.run_id not in listings:
                try:
                    listings[cell.run_id] = self.backend.images(cell.run_id)
                except BackendError as e:  # removed since: the cell says so
                    log.debug("No images for run %s: %s", cell.run_id, e)
                    listings[cell.run_id] = None
        return listings

    def _common_path(self, listings: dict[str, rest.RunImages | None]) -> str:
        paths = [
            {e["path"] for e in (listing or {"images": []})["images"]}
            for listing in listings.values()
        ]
        common = sorted(set.intersection(*paths)) if paths else []
        if not common:
            raise ValueError("these runs have no image path in common: name one with --path")
        return common[0]

    def _apply(self, listings: dict[str, rest.RunImages | None]) -> None:
        for cell in self.cells:
            listing = listings.get(cell.run_id)
            cell.run = listing["run"] if listing else cell.run
            entries = listing["images"] if listing else []
            cell.entry = next((e for e in entries if e["path"] == self.path), None)

    # -- widgets ------------------------------------------------------------------

    def _slider_options(self) -> list[tuple[str, float]]:
        following = [c.entry for c in self.cells if c.entry is not None and c.pin is None]
        entries = following or [c.entry for c in self.cells if c.entry is not None]
        if self.align.value == "revision":
            numbers = sorted({s.number for entry in entries for s in numbered(entry)})
            return [(str(n), n) for n in range(numbers[0], numbers[-1] + 1)] if numbers else []
        times = sorted({r["time"] for entry in entries for r in entry["revisions"]})
        labels = [local_time(t, "%H:%M:%S") for t in times]
        if len(set(labels)) < len(labels):  # within one second: the milliseconds tell
            labels = [
                f"{label}.{round(t * 1000) % 1000:03d}"
                for label, t in zip(labels, times, strict=True)
            ]
        return list(zip(labels, times, strict=True))

    def _render(self, start: float | None = None) -> None:
        """Slider options from the cells' revisions, then every cell and the difference."""
        options = self._slider_options() or [("–", 0)]
        old = self.slider.value
        at_end = self.slider.options and old == self.slider.options[-1][1]
        values = [value for _label, value in options]
        if start is not None:
            value = min(values, key=lambda v: abs(v - start))
        elif at_end or old not in values:
            value = values[-1]  # follow the newest revision unless the user moved
        else:
            value = old
        with self._quietly():
            if tuple(self.slider.options) != tuple(options):
                self.slider.options = options
            self.slider.value = value
        self.slider.description = "Revision" if self.align.value == "revision" else "Time"
        self.title.value = f"<b>{html.escape(self.path)}</b>"
        for cell in self.cells:
            with self._quietly():
                cell.show_pins()
            self._show_cell(cell)
        self._render_difference()

    def _show_cell(self, cell: _Cell) -> None:
        run = html.escape(cell.name)
        if cell.entry is None:
            cell.shown = None
            cell.image.value = b""
            why = "run not found" if cell.run is None else f"no image {html.escape(self.path)}"
            cell.label.value = f"<b>{run}</b><br><i>{why}</i>"
            return
        value = self.slider.value
        if cell.pin is not None:
            shown = by_number(cell.entry, cell.pin)
        elif self.align.value == "revision":
            shown = by_number(cell.entry, int(value))
        else:
            shown = nearest_in_time(cell.entry, value)
        revision = shown.revision
        if cell.shown != shown:
            data = self._fetch(cell.run_id, revision["revision"], COMPARE_WIDTH)
            cell.image.format, cell.image.value = image_format(data), data
            small = revision["width"] < _CELL_WIDTH  # enlarged in its cell: keep it crisp
            (cell.image.add_class if small else cell.image.remove_class)(PIXELATED_CLASS)
        cell.shown = shown
        notes = []
        if cell.pin is not None:
            notes.append("pinned")
        wanted = cell.pin if cell.pin is not None else value
        if (cell.pin is not None or self.align.value == "revision") and shown.number != wanted:
            notes.append(f"nearest to {int(wanted)}")
        if cell.pin is None and self.align.value == "time" and revision["time"] != value:
            notes.append(f"{revision['time'] - value:+.1f} s from the time chosen")
        cell.label.value = (
            f"<b>{run}</b><br>revision {shown.number} of {shown.count} · "
            f"{local_time(revision['time'], '%Y-%m-%d %H:%M:%S')} · "
            f"{revision['width']}×{revision['height']} px"
            + (f"<br><i>{html.escape(', '.join(notes))}</i>" if notes else "")
        )

    def _fetch(self, run_id: str, counter: int, thumb: int | None) -> bytes:
        key = (run_id, counter, thumb)
        data = self._images.get(key)
        if data is None:
            try:
                data = self.backend.image(run_id, self.path, rev=counter, thumb=thumb)
            except BackendError as e:  # gone since the listing: the next reload drops it
                log.debug("Image %s of run %s: %s", self.path, run_id, e)
                return b""
            limit = _CACHED_IMAGES if thumb is not None else _CACHED_FULL
            same_kind = [k for k in self._images if (k[2] is None) == (thumb is None)]
            if len(same_kind) >= limit:  # the oldest fetched of its kind goes
                self._images.pop(same_kind[0])
            self._images[key] = data
        return data

    # -- the difference -------------------------------------------------------------

    def _render_difference(self) -> None:
        self.difference.box.layout.display = "" if len(self.cells) > 1 else "none"
        a, b = (self.cells[index].side() for index in self.difference.chosen)
        self.difference.update(a, b, lambda run_id, counter: self._fetch(run_id, counter, None))

    # -- callbacks ------------------------------------------------------------------

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._quietly.active:
            with self._lock:
                for cell in self.cells:
                    self._show_cell(cell)
                self._render_difference()

    def _on_align(self, change: dict[str, Any]) -> None:
        """Switch alignment where the first cell following the slider is."""
        with self._lock:
            shown = next((c.shown for c in self.cells if c.pin is None and c.shown), None)
            start: float | None = None
            if shown is not None:
                start = shown.number if change["new"] == "revision" else shown.revision["time"]
            self._render(start=start)

    def _on_pin(self, cell: _Cell, change: dict[str, Any]) -> None:
        if not self._quietly.active:
            with self._lock:
                cell.pin = change["new"] or None
                self._render()

    def _on_difference_control(self) -> None:
        with self._lock:
            self._render_difference()


def compare(
    runs: Sequence[str],
    path: str | None = None,
    *,
    align: str = "revision",
    revision: int | None = None,
    backend: Backend | None = None,
) -> ImageComparison:
    """An :class:`ImageComparison` of ``path`` in ``runs`` (run keys; ``KEY@N`` pins
    revision N) on ``backend``, or on this kernel's shared backend (the server
    extension, else a monitor in the kernel)."""
    return ImageComparison(
        shared_backend() if backend is None else backend,
        runs,
        path,
        align=align,
        revision=revision,
    )
