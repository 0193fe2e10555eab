"""The panel's Images tab: thumbnails of the selected runs' images, the viewer with
its revision slider and "Compare with…" (an :class:`~.compare.ImageComparison`),
and the compare view across the selected runs.

Image bytes are fetched lazily: only for the runs shown, the first
:data:`THUMBS_PER_RUN` of each until "more" is clicked, and again only when an
image's newest revision changes.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from .. import rest
from .backend import Backend, BackendError
from .compare import ImageComparison
from .parts import COMPARE_WIDTH, Quiet, descendants, image_format, local_time
from .revisions import number_of

__all__ = ["THUMBS_PER_RUN", "THUMB_WIDTH", "ImagesView"]

log = logging.getLogger(__name__)

THUMBS_PER_RUN = 48  # thumbnails fetched per run until "more" is clicked
THUMB_WIDTH = 160


@dataclass(eq=False)
class _Thumb:
    box: widgets.VBox
    image: widgets.Image
    button: widgets.Button
    revision: int


class ImagesView:
    """The Images tab (``box``) over ``backend``. Every method is called with ``lock``
    held; the widgets' own callbacks take it."""

    def __init__(self, backend: Backend, lock: threading.RLock, height: int) -> None:
        self.backend = backend
        self._lock = lock
        self._quietly = Quiet()  # on while this code moves the slider
        self._run_ids: list[str] = []
        self._listings: dict[str, rest.RunImages] = {}
        self._limits: dict[str, int] = {}
        self._thumbs: dict[tuple[str, str], _Thumb] = {}
        self._viewing: tuple[str, str] | None = None
        self._shown: tuple[str, str, int] | None = None
        self._compared: tuple[tuple[str, str, int], ...] = ()
        self._revision_options: tuple[tuple[str, int], ...] = ()
        self.thumbnail_images: list[widgets.Image] = []
        self.compare_images: list[widgets.Image] = []

        self.images_note = widgets.HTML()
        self.thumbnails = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({THUMB_WIDTH + 10}px, 1fr))",
                grid_gap="8px",
            )
        )
        self.more_box = widgets.HBox()
        self.viewer_info = widgets.HTML()
        self.revision_slider = widgets.SelectionSlider(
            options=[("newest", -1)], description="Revision", continuous_update=False
        )
        self.revision_slider.layout.width = "95%"
        self.revision_slider.observe(self._on_revision, "value")
        self.viewer_image = widgets.Image(layout=widgets.Layout(max_width="100%"))
        self.viewer_close = widgets.Button(description="Close", icon="times")
        self.viewer_close.on_click(lambda _: self.close_viewer())
        # "Compare with…": the runs that captured this image, then a comparison of them.
        self.compare_with = widgets.Button(description="Compare with…", icon="columns")
        self.compare_with.add_class("guildimg-compare-with")
        self.compare_with.on_click(lambda _: self._toggle_picker())
        self.compare_picker = widgets.SelectMultiple(options=[], rows=6, description="With")
        self.compare_go = widgets.Button(description="Compare", button_style="primary")
        self.compare_go.on_click(lambda _: self._compare_chosen())
        self.picker_note = widgets.HTML()
        self.picker = widgets.HBox(
            [self.compare_picker, self.compare_go, self.picker_note],
            layout=widgets.Layout(display="none"),
        )
        heading = widgets.HBox([self.viewer_info, self.compare_with, self.viewer_close])
        self.viewer = widgets.VBox(
            [heading, self.picker, self.revision_slider, self.viewer_image],
            layout=widgets.Layout(display="none", border="1px solid #ccc", padding="4px"),
        )
        self.comparison: ImageComparison | None = None
        self.comparison_box = widgets.VBox()
        self.compare_box = widgets.HBox(layout=widgets.Layout(display="none"))
        self.box = widgets.VBox(
            [
                self.images_note,
                self.viewer,
                self.comparison_box,
                self.compare_box,
                self.thumbnails,
                self.more_box,
            ],
            layout=widgets.Layout(max_height=f"{height}px", overflow="auto"),
        )

    def show(self, run_ids: Sequence[str], note: str) -> None:
        """Show the images of these runs (``note`` when there are none to list)."""
        listings: dict[str, rest.RunImages] = {}
        for run_id in run_ids:
            try:
                listings[run_id] = self.backend.images(run_id)
            except BackendError as e:  # removed since the runs were listed
                log.debug("No images for run %s: %s", run_id, e)
        self._run_ids, self._listings = list(run_ids), listings
        self._render_thumbnails()
        if not run_ids:
            self.images_note.value = f"<i>{html.escape(note)}</i>"
        else:
            self.images_note.value = "" if self._thumbs else "<i>No images captured yet.</i>"
        self._render_viewer()
        if self.comparison is not None:
            self.comparison.reload()  # new revisions join it as they join the viewer

    def open_image(self, run_id: str, path: str) -> None:
        with self._lock:
            self._viewing = (run_id, path)
            self.picker.layout.display = "none"  # its runs were those of another image
            self._render_viewer()

    def close_viewer(self) -> None:
        with self._lock:
            self._viewing = self._shown = None
            self.picker.layout.display = "none"
            self._render_viewer()

    def open_comparison(self, keys: Sequence[str], path: str, revision: int | None = None) -> None:
        """Show an :class:`~.compare.ImageComparison` of ``path`` in the runs ``keys``
        (``KEY@N`` pins revision N) above the thumbnails, in place of one open before;
        ``revision``: the number its slider starts at. ValueError as it raises."""
        with self._lock:
            comparison = ImageComparison(
                self.backend,
                keys,
                path,
                revision=revision,
                lock=self._lock,
                on_close=self.close_comparison,
            )
            self.close_comparison()
            self.comparison = comparison
            self.comparison_box.children = (comparison,)

    def close_comparison(self) -> None:
        with self._lock:
            comparison, self.comparison = self.comparison, None
            self.comparison_box.children = ()
            if comparison is not None:
                comparison.close()

    def _viewed_number(self) -> int | None:
        """The number (1 = the oldest captured) of the revision the viewer shows."""
        entry = None if self._shown is None else self._entry(*self._shown[:2])
        return None if self._shown is None or entry is None else number_of(entry, self._shown[2])

    def _toggle_picker(self) -> None:
        """Show (or hide) the runs that captured the image open, to compare it with."""
        with self._lock:
            if self._viewing is None or self.picker.layout.display != "none":
                self.picker.layout.display = "none"
                return
            run_id, path = self._viewing
            try:
                runs = self.backend.runs(image=path)
            except BackendError as e:
                self.picker_note.value = f"<b>⚠ {html.escape(str(e))}</b>"
                runs = []
            else:
                self.picker_note.value = ""
            number = self._viewed_number()
            options = []
            if number is not None:
                options.append((f"this run at revision {number} (pinned)", f"{run_id}@{number}"))
            for run in runs:
                if run["id"] != run_id:
                    started = local_time(run["started"], "%Y-%m-%d %H:%M")
                    label = f"{run['short_id']}  {run['operation']}  {started}  {run['label']}"
                    options.append((label.strip(), run["id"]))
            self.compare_picker.options = options
            self.picker.layout.display = ""

    def _compare_chosen(self) -> None:
        """Compare the image open in its run with the runs chosen in the picker."""
        with self._lock:
            if self._viewing is None:
                return
            run_id, path = self._viewing
            try:
                keys = [run_id, *self.compare_picker.value]
                self.open_comparison(keys, path, revision=self._viewed_number())
            except (ValueError, BackendError) as e:
                self.picker_note.value = f"<b>⚠ {html.escape(str(e))}</b>"
                return
            self.picker.layout.display = "none"

    def _fetch(self, run_id: str, path: str, **kwargs: int | None) -> bytes:
        try:
            return self.backend.image(run_id, path, **kwargs)
        except BackendError as e:  # gone since the listing: the next reload drops it
            log.debug("Image %s of run %s: %s", path, run_id, e)
            return b""

    # -- thumbnails -------------------------------------------------------------

    def _render_thumbnails(self) -> None:
        thumbs: dict[tuple[str, str], _Thumb] = {}
        more: list[widgets.Button] = []
        for run_id, listing in self._listings.items():
            entries = listing["images"]
            limit = self._limits.get(run_id, THUMBS_PER_RUN)
            for entry in entries[:limit]:
                key, newest = (run_id, entry["path"]), entry["revisions"][0]["revision"]
                thumb = self._thumbs.pop(key, None)
                if thumb is None or thumb.revision != newest:
                    data = self._fetch(*key, rev=newest, thumb=THUMB_WIDTH)
                    if thumb is None:
                        thumb = self._make_thumb(listing["run"], entry["path"], newest, data)
                    else:
                        thumb.image.format, thumb.image.value = image_format(data), data
                        thumb.revision = newest
                thumbs[key] = thumb
            if len(entries) > limit:
                left = f"{len(entries) - limit} more from {listing['run']['short_id']}"
                button = widgets.Button(description=left)
                button.on_click(lambda _, run_id=run_id: self._more(run_id))
                more.append(button)
        for thumb in self._thumbs.values():  # no longer shown
            for widget in (thumb.image, thumb.button, thumb.box):
                widget.close()
        self._thumbs = thumbs
        self.thumbnail_images = [thumb.image for thumb in thumbs.values()]
        boxes = tuple(thumb.box for thumb in thumbs.values())
        if tuple(self.thumbnails.children) != boxes:
            self.thumbnails.children = boxes
        for button in self.more_box.children:
            button.close()
        self.more_box.children = tuple(more)

    def _make_thumb(self, run: rest.Run, path: str, revision: int, data: bytes) -> _Thumb:
        image = widgets.Image(value=data, format=image_format(data))
        image.layout = widgets.Layout(
            max_width=f"{THUMB_WIDTH}px", max_height=f"{THUMB_WIDTH}px", object_fit="contain"
        )
        image.add_class("guildimg-thumb")
        button = widgets.Button(description=path, tooltip=f"{run['name']}: {path}")
        button.layout.width = f"{THUMB_WIDTH}px"
        button.on_click(lambda _: self.open_image(run["id"], path))
        box = widgets.VBox([image, button], layout=widgets.Layout(align_items="center"))
        return _Thumb(box, image, button, revision)

    def _more(self, run_id: str) -> None:
        with self._lock:
            self._limits[run_id] = self._limits.get(run_id, THUMBS_PER_RUN) + THUMBS_PER_RUN
            self._render_thumbnails()

    # -- the viewer -------------------------------------------------------------

    def _entry(self, run_id: str, path: str) -> rest.Image | None:
        listing = self._listings.get(run_id)
        entries = listing["images"] if listing else []
        return next((entry for entry in entries if entry["path"] == path), None)

    def _render_viewer(self) -> None:
        entry = None if self._viewing is None else self._entry(*self._viewing)
        if self._viewing is None or entry is None:  # nothing open, or its run or image went
            self._viewing = self._shown = None
            self.viewer.layout.display = "none"
            self._render_compare()
            return
        run_id, path = self._viewing
        revisions = entry["revisions"]
        options = tuple(
            (f"#{r['revision']}  {local_time(r['time'], '%H:%M:%S')}", r["revision"])
            for r in revisions
        )
        old = self.revision_slider.value
        old_newest = self._revision_options[0][1] if self._revision_options else None
        same_image = self._shown is not None and self._shown[:2] == (run_id, path)
        # Follow the newest revision unless the user moved to an older one.
        keep = same_image and old != old_newest and old in [value for _label, value in options]
        with self._quietly():
            if self._revision_options != options:
                self.revision_slider.options = self._revision_options = options
            self.revision_slider.value = old if keep else revisions[0]["revision"]
        self._show_revision(self.revision_slider.value)
        self.viewer.layout.display = ""
        self._render_compare()

    def _show_revision(self, revision: int) -> None:
        if self._viewing is None or self._shown == (*self._viewing, revision):
            return
        run_id, path = self._viewing
        entry = self._entry(run_id, path)
        revisions: list[rest.Revision] = entry["revisions"] if entry is not None else []
        info = next((r for r in revisions if r["revision"] == revision), None)
        if info is None:
            return
        data = self._fetch(run_id, path, rev=revision)
        self.viewer_image.format, self.viewer_image.value = image_format(data), data
        self._shown = (run_id, path, revision)
        run = self._listings[run_id]["run"]
        count, index = len(revisions), revisions.index(info)
        self.viewer_info.value = (
            f"<b>{html.escape(path)}</b> · run {html.escape(run['name'])}<br>"
            f"{info['width']}×{info['height']} px · {info['size']:,} bytes · "
            f"revision {count - index} of {count}, "
            f"{local_time(info['time'], '%Y-%m-%d %H:%M:%S')}"
        )

    def _on_revision(self, change: dict[str, Any]) -> None:
        if not self._quietly.active:
            with self._lock:
                self._show_revision(change["new"])

    def _render_compare(self) -> None:
        wanted: list[tuple[str, str, int]] = []
        if self._viewing is not None and len(self._run_ids) > 1:
            path = self._viewing[1]
            for run_id in self._run_ids:
                entry = self._entry(run_id, path)
                if entry is not None:
                    wanted.append((run_id, path, entry["revisions"][0]["revision"]))
        if tuple(wanted) == self._compared:
            return
        for widget in descendants(self.compare_box):
            widget.close()
        boxes, images = [], []
        for run_id, path, revision in wanted:
            data = self._fetch(run_id, path, rev=revision, thumb=COMPARE_WIDTH)
            image = widgets.Image(value=data, format=image_format(data))
            image.layout = widgets.Layout(max_width="100%", object_fit="contain")
            run = self._listings[run_id]["run"]
            label = widgets.HTML(f"<b>{html.escape(run['short_id'])}</b> {html.escape(path)}")
            boxes.append(widgets.VBox([label, image], layout=widgets.Layout(flex="1")))
            images.append(image)
        self._compared = tuple(wanted)
        self.compare_images = images
        self.compare_box.children = tuple(boxes)
        self.compare_box.layout.display = "" if boxes else "none"
