"""The notebook panel: runs, their captured images (with every revision) and
TensorBoard, in standard ipywidgets.

Widgets are updated from three threads: the kernel's (clicks), the auto-refresh
thread (the backend's change feed) and a TensorBoard start thread. One re-entrant
lock serializes everything that reads the backend and updates widgets.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from .client import Backend, BackendError, LocalBackend, shared_backend
from .imageview import (
    COMPARE_WIDTH,
    THUMB_WIDTH,
    THUMBS_PER_RUN,
    ImagesView,
    Quiet,
    descendants,
    local_time,
)

__all__ = ["COMPARE_WIDTH", "PAGE_SIZE", "THUMBS_PER_RUN", "THUMB_WIDTH", "GuildImgPanel", "panel"]

log = logging.getLogger(__name__)

PAGE_SIZE = 200  # runs per page of the list
_POLL_SECONDS = 1.0  # a long poll's length, so also how long close() waits for the thread
_RETRY_SECONDS = 5.0


def _run_label(run: dict[str, Any]) -> str:
    """``short_id  op  started  status  label  [N img]``, empty fields left out."""
    parts = [run["short_id"], run["operation"], local_time(run["started"], "%Y-%m-%d %H:%M")]
    parts += [run["status"], run["label"] or "", f"[{run['image_count']} img]"]
    return "  ".join(part for part in parts if part)


def _matches(run: dict[str, Any], needle: str) -> bool:
    fields = (run["id"], run["short_id"], run["name"], run["operation"], run["label"] or "")
    return any(needle in str(field).lower() for field in (*fields, run["status"]))


def _status_html(status: dict[str, Any], description: str | None) -> str:
    monitor, tensorboard = status["monitor"], status["tensorboard"]
    state = html.escape(tensorboard["status"])
    if tensorboard["status"] == "failed" and tensorboard.get("reason"):
        reason = tensorboard["reason"]
        first = html.escape(reason.splitlines()[0][:200])
        state += f' <span title="{html.escape(reason)}">({first})</span>'
    parts = [
        f"TensorBoard: <b>{state}</b>",
        f"{monitor['runs']} runs",
        f"{monitor['images']} images",
        f"last pass {local_time(monitor['last_pass'], '%H:%M:%S') or '–'}",
    ]
    if description:
        parts.append(f"<i>monitor {html.escape(description)}</i>")
    return " · ".join(parts)


class GuildImgPanel(widgets.VBox):
    """Runs, images and TensorBoard of ``backend``.

    ``run`` preselects a run (an id or a unique prefix; ValueError if none matches);
    otherwise the newest run is shown until the user picks one. ``tab`` is "images" or
    "tensorboard" (opening that tab starts TensorBoard). ``auto_refresh`` follows the
    backend's change feed in a daemon thread. :meth:`close` stops the thread; the
    backend is the caller's to close."""

    def __init__(
        self,
        backend: Backend,
        *,
        run: str | None = None,
        height: int = 600,
        tab: str = "images",
        auto_refresh: bool = True,
    ) -> None:
        self.backend = backend
        self.height = height
        self._lock = threading.RLock()
        # Set (per thread) while this code, not the user, changes a widget's value.
        self._quietly = Quiet()
        self._closed = False
        self._runs: list[dict[str, Any]] = []
        self._matching: list[dict[str, Any]] = []
        self._page = 0
        self._selected: list[str] = []
        self._chosen = False  # a selection was made: stop following the newest run
        self._generation = -1
        self._status: dict[str, Any] | None = None  # the last status read
        self._last_error: str | None = None
        self._poll_stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._tb_thread: threading.Thread | None = None
        # Checked only now: ipywidgets calls close() when a half-made panel is collected.
        if tab not in ("images", "tensorboard"):
            raise ValueError(f"tab must be 'images' or 'tensorboard', not {tab!r}")
        self._build()
        super().__init__(children=[self.header, self._body])
        self.add_class("guildimg-panel")
        with self._lock:
            try:
                if self._load_runs() and run is not None:
                    self._selected, self._chosen = [self._resolve_fresh(run)], True
                    self._page = self._page_of(self._selected[0])
            except ValueError:
                self.close()
                raise
            self._render_runs()
            self._load_images()
        if tab == "tensorboard":
            self.tabs.selected_index = 1
        if auto_refresh:
            self._start_polling()

    # -- widgets ------------------------------------------------------------

    def _build(self) -> None:
        height = self.height
        self.status_html = widgets.HTML("Loading…")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("guildimg-refresh")
        self.refresh_button.on_click(lambda _: self._on_refresh())
        self.auto_refresh = widgets.Checkbox(value=True, description="Auto-refresh", indent=False)
        self.auto_refresh.observe(self._on_auto_refresh, "value")
        self.header = widgets.HBox([self.status_html, self.refresh_button, self.auto_refresh])
        self.header.layout.align_items = "center"
        self.header.layout.justify_content = "space-between"

        self.filter_text = widgets.Text(placeholder="filter: id, operation, label, status")
        self.filter_text.observe(self._on_filter, "value")
        self.runs_select = widgets.SelectMultiple(options=[], rows=max(5, (height - 80) // 20))
        self.runs_select.layout.width = "100%"
        self.runs_select.observe(self._on_select, "value")
        self.prev_page = widgets.Button(description="◀", layout=widgets.Layout(width="40px"))
        self.next_page = widgets.Button(description="▶", layout=widgets.Layout(width="40px"))
        self.prev_page.on_click(lambda _: self._turn(-1))
        self.next_page.on_click(lambda _: self._turn(1))
        self.page_label = widgets.Label()
        pager = widgets.HBox([self.prev_page, self.page_label, self.next_page])
        runs_box = widgets.VBox([self.filter_text, self.runs_select, pager])
        runs_box.layout.width = "36%"

        view = self.images_view = ImagesView(self.backend, self._lock, height)
        self.images_note, self.thumbnails, self.more_box = (
            view.images_note,
            view.thumbnails,
            view.more_box,
        )
        self.viewer, self.viewer_image, self.viewer_info = (
            view.viewer,
            view.viewer_image,
            view.viewer_info,
        )
        self.revision_slider, self.compare_box = view.revision_slider, view.compare_box

        self.tensorboard_frame = widgets.HTML("TensorBoard starts when this tab is opened.")
        self.tensorboard_frame.layout.width = "100%"
        self.tensorboard_frame.add_class("guildimg-tensorboard")
        self.tabs = widgets.Tab(children=[view.box, self.tensorboard_frame])
        self.tabs.titles = ("Images", "TensorBoard")
        self.tabs.layout.flex = "1"
        self.tabs.observe(self._on_tab, "selected_index")
        self._body = widgets.HBox([runs_box, self.tabs])

    def _by_user(self) -> bool:
        return not self._quietly.active

    # -- public ---------------------------------------------------------------

    def reload(self) -> None:
        """Re-read status, runs and the selected runs' images; keep the selection. A
        backend error is shown in the header, not raised."""
        with self._lock:
            if self._closed:
                return
            self._load_runs()
            self._render_runs()
            self._load_images()

    def select(self, run_ids: Iterable[str]) -> None:
        """Show these runs (ids or unique prefixes; ValueError if one matches none)."""
        with self._lock:
            self._selected = [self._resolve(run_id) for run_id in run_ids]
            self._chosen = True
            if self._selected:
                self._page = self._page_of(self._selected[0])
            self._render_runs()
            self._load_images()

    @property
    def thumbnail_images(self) -> list[widgets.Image]:
        """The thumbnails' Image widgets, in display order."""
        return self.images_view.thumbnail_images

    @property
    def compare_images(self) -> list[widgets.Image]:
        """The compare view's Image widgets, one per selected run having the image."""
        return self.images_view.compare_images

    @property
    def refresh_thread(self) -> threading.Thread | None:
        """The auto-refresh thread (alive while following changes)."""
        return self._poll_thread

    def open_image(self, run_id: str, path: str) -> None:
        """Show one image large, with its revisions (and the compare view)."""
        self.images_view.open_image(run_id, path)

    def close_viewer(self) -> None:
        self.images_view.close_viewer()

    def close(self) -> None:
        """Stop following changes and close every widget of the panel."""
        with self._lock:
            self._closed = True
        self._stop_polling()
        thread = self._poll_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_POLL_SECONDS + 5)
        for widget in descendants(self):
            widget.close()
        super().close()

    # -- runs -----------------------------------------------------------------

    def _load_runs(self) -> bool:
        try:
            status = self.backend.status()
            runs = self.backend.runs()
        except BackendError as e:
            self._show_error(e)
            return False
        self._generation = status["monitor"]["generation"]
        self._status, self._runs, self._last_error = status, runs, None
        known = {run["id"] for run in runs}
        if self._chosen:
            self._selected = [run_id for run_id in self._selected if run_id in known]
        else:  # follow the newest run until the user picks one
            self._selected = [runs[0]["id"]] if runs else []
        self._render_status()
        return True

    def _render_status(self) -> None:
        if self._status is not None:
            local = isinstance(self.backend, LocalBackend)
            description = self.backend.description if local else None
            self.status_html.value = _status_html(self._status, description)

    def _resolve_fresh(self, key: str) -> str:
        """Like :meth:`_resolve`, but a run the monitor has not seen yet (one made a
        moment ago) gets a monitor pass before it counts as missing."""
        try:
            return self._resolve(key)
        except ValueError:
            self.backend.refresh()
            self._load_runs()
            return self._resolve(key)

    def _resolve(self, key: str) -> str:
        for run in self._runs:
            if key in (run["id"], run["run_id"]):
                return run["id"]
        found = {r["id"] for r in self._runs if key and r["run_id"].startswith(key)}
        found |= {r["id"] for r in self._runs if key and r["id"].startswith(key)}
        if len(found) == 1:
            return found.pop()
        raise ValueError(f"{'several runs match' if found else 'no run'} {key!r}")

    def _page_of(self, run_id: str) -> int:
        ids = [run["id"] for run in self._matching_runs()]
        return ids.index(run_id) // PAGE_SIZE if run_id in ids else self._page

    def _matching_runs(self) -> list[dict[str, Any]]:
        needle = self.filter_text.value.strip().lower()
        return [run for run in self._runs if _matches(run, needle)] if needle else self._runs

    def _render_runs(self) -> None:
        self._matching = self._matching_runs()
        pages = max(1, -(-len(self._matching) // PAGE_SIZE))
        self._page = min(max(self._page, 0), pages - 1)
        start = self._page * PAGE_SIZE
        shown = self._matching[start : start + PAGE_SIZE]
        options = tuple((_run_label(run), run["id"]) for run in shown)
        on_page = {run["id"] for run in shown}
        with self._quietly():
            if tuple(self.runs_select.options) != options:
                self.runs_select.options = options
            self.runs_select.value = tuple(i for i in self._selected if i in on_page)
        total = len(self._matching)
        first = start + 1 if total else 0
        self.page_label.value = f"{first}–{start + len(shown)} of {total} runs"
        self.prev_page.disabled = self._page == 0
        self.next_page.disabled = self._page >= pages - 1

    def _on_select(self, change: dict[str, Any]) -> None:
        if not self._by_user():
            return
        with self._lock:
            on_page = {value for _label, value in self.runs_select.options}
            kept = [run_id for run_id in self._selected if run_id not in on_page]
            self._selected = kept + list(change["new"])
            self._chosen = True
            self._load_images()

    def _on_filter(self, _change: dict[str, Any]) -> None:
        with self._lock:
            self._page = 0
            self._render_runs()

    def _turn(self, step: int) -> None:
        with self._lock:
            self._page += step
            self._render_runs()

    # -- images ---------------------------------------------------------------

    def _load_images(self) -> None:
        note = "No run selected." if self._runs else "No runs yet."
        self.images_view.show(self._selected, note)

    # -- refreshing -------------------------------------------------------------

    def _show_error(self, error: Exception) -> None:
        message = str(error)
        # Logged once while the same error repeats (a server away, polled every second).
        level = logging.DEBUG if message == self._last_error else logging.WARNING
        log.log(level, "guildimg panel: %s", message, exc_info=error)
        self._last_error = message
        self.status_html.value = f"<b>⚠ {html.escape(message)}</b>"

    def _on_refresh(self) -> None:
        try:
            self.backend.refresh()
        except BackendError as e:
            with self._lock:
                self._show_error(e)
            return
        self.reload()

    def _on_auto_refresh(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._start_polling()
        else:
            self._stop_polling()

    def _start_polling(self) -> None:
        self._stop_polling()
        self._poll_stop = stop = threading.Event()
        self._poll_thread = threading.Thread(
            target=self._poll, args=(stop,), name="guildimg-panel-poll", daemon=True
        )
        self._poll_thread.start()

    def _stop_polling(self) -> None:
        self._poll_stop.set()  # the thread ends after its long poll (at most _POLL_SECONDS)

    def _poll(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set() and not self.backend.closed:
            try:
                generation = self.backend.wait_changes(self._generation, timeout=_POLL_SECONDS)
                if (failures or generation != self._generation) and not stop.is_set():
                    self.reload()
                failures = 0
            except BackendError as e:
                failures += 1
                with self._lock:
                    self._show_error(e)
                stop.wait(_RETRY_SECONDS)
            except Exception:
                # A bug in one reload must not end following changes for good.
                log.exception("guildimg panel: reload failed; still following changes")
                stop.wait(_RETRY_SECONDS)

    # -- TensorBoard ------------------------------------------------------------

    def _on_tab(self, change: dict[str, Any]) -> None:
        if change["new"] != 1 or (self._tb_thread is not None and self._tb_thread.is_alive()):
            return
        if "<iframe" in self.tensorboard_frame.value:
            return
        self.tensorboard_frame.value = "<p>Starting TensorBoard…</p>"
        with self._lock:
            if self._status is not None and self._status["tensorboard"]["status"] != "ready":
                self._status["tensorboard"] = {**self._status["tensorboard"], "status": "starting"}
                self._render_status()
        self._tb_thread = threading.Thread(
            target=self._start_tensorboard, name="guildimg-panel-tb", daemon=True
        )
        self._tb_thread.start()

    def _start_tensorboard(self) -> None:
        try:
            state = self.backend.start_tensorboard()
            src = self.backend.tensorboard_src()
        except BackendError as e:
            state, src = {"status": "failed", "reason": str(e)}, ""
        with self._lock:
            if self._closed:
                return
            if state["status"] == "ready":
                self.tensorboard_frame.value = (
                    f'<iframe src="{html.escape(src)}" title="TensorBoard" '
                    f'style="width:100%;height:{int(self.height)}px;border:0"></iframe>'
                )
            else:
                reason = html.escape(state.get("reason") or state["status"])
                self.tensorboard_frame.value = (
                    f"<p>TensorBoard did not start:</p><pre>{reason}</pre>"
                    "<p>Open the Images tab and this one again to retry.</p>"
                )
                self._tb_thread = None
        self.reload()


def panel(
    sources: Sequence[str] = (),
    run: str | None = None,
    height: int = 600,
    tab: str = "images",
    backend: Backend | None = None,
) -> GuildImgPanel:
    """A panel on ``backend``, or on this kernel's shared backend (the server extension,
    else a monitor in the kernel) watching ``sources`` too."""
    return GuildImgPanel(
        shared_backend(sources) if backend is None else backend, run=run, height=height, tab=tab
    )
