"""The notebook panel: runs, their captured images (with every revision) and
TensorBoard, in standard ipywidgets.

The panel is made of four parts, each a small class owning its widgets: the
:class:`~.header.PanelHeader`, the :class:`~.runlist.RunList`, the
:class:`~.imageview.ImagesView` and the :class:`~.tensorboardtab.TensorBoardTab`.
The panel reads the backend, hands each part what it shows, and wires the parts'
callbacks.

Widgets are updated from three threads: the kernel's (clicks), the auto-refresh
thread (the backend's change feed) and a TensorBoard start thread. One re-entrant
lock, the panel's, serializes everything that reads the backend and updates widgets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from .. import rest
from .client import Backend, BackendError, shared_backend
from .header import PanelHeader
from .imageview import THUMB_WIDTH, THUMBS_PER_RUN, ImagesView
from .parts import COMPARE_WIDTH, descendants
from .runlist import PAGE_SIZE, RunList
from .tensorboardtab import TensorBoardTab

__all__ = [
    "COMPARE_WIDTH",
    "PAGE_SIZE",
    "THUMBS_PER_RUN",
    "THUMB_WIDTH",
    "GuildImgPanel",
    "panel",
]

log = logging.getLogger(__name__)

_POLL_SECONDS = 1.0  # a long poll's length, so also how long close() waits for the thread
_RETRY_SECONDS = 5.0


class GuildImgPanel(widgets.VBox):
    """Runs, images and TensorBoard of ``backend``.

    ``run`` preselects a run (any key the backend's run lookup takes: an id, or a
    unique prefix; ValueError if it names none); otherwise the newest run is shown until
    the user picks one. ``tab`` is "images" or "tensorboard" (opening that tab starts
    TensorBoard). ``auto_refresh`` follows the backend's change feed in a daemon thread.
    :meth:`close` stops the thread; the backend is the caller's to close.

    The parts are ``header`` (:class:`PanelHeader`), ``run_list``
    (:class:`~.runlist.RunList`), ``images`` (:class:`~.imageview.ImagesView`) and
    ``tensorboard`` (:class:`~.tensorboardtab.TensorBoardTab`), in ``tabs``."""

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
        self._closed = False
        self._generation = -1
        self._last_error: str | None = None
        self._poll_stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        # Checked only now: ipywidgets calls close() when a half-made panel is collected.
        if tab not in ("images", "tensorboard"):
            raise ValueError(f"tab must be 'images' or 'tensorboard', not {tab!r}")
        self.header = PanelHeader(backend.description)
        self.header.refresh_button.on_click(lambda _: self._on_refresh())
        self.header.auto_refresh.observe(self._on_auto_refresh, "value")
        self.run_list = RunList(
            self._lock, height, self._load_images, self._on_filter, self._on_tb_action
        )
        self.images = ImagesView(backend, self._lock, height)
        self.tensorboard = TensorBoardTab(backend, height, self._on_tensorboard)
        self.tabs = widgets.Tab(children=[self.images.box, self.tensorboard.box])
        self.tabs.titles = ("Images", "TensorBoard")
        self.tabs.layout.flex = "1"
        self.tabs.observe(self._on_tab, "selected_index")
        body = widgets.HBox([self.run_list.box, self.tabs])
        super().__init__(children=[self.header.box, body])
        self.add_class("guildimg-panel")
        with self._lock:
            try:
                if self._load_runs() and run is not None:
                    self.run_list.choose([self._resolve_fresh(run)])
            except (ValueError, BackendError):
                self.close()
                raise
            self.run_list.render()
            self._load_images()
        if tab == "tensorboard":
            self.tabs.selected_index = 1
        if auto_refresh:
            self._start_polling()

    # -- public ---------------------------------------------------------------

    def reload(self) -> None:
        """Re-read status, runs and the selected runs' images; keep the selection. A
        backend error is shown in the header, not raised."""
        with self._lock:
            if self._closed:
                return
            self._load_runs()
            self.run_list.render()
            self._load_images()

    def select(self, run_ids: Iterable[str]) -> None:
        """Show these runs (any key the backend's run lookup takes; ValueError if one
        names no run)."""
        with self._lock:
            self.run_list.choose([self._resolve(run_id) for run_id in run_ids])
            self._load_images()

    def open_image(self, run_id: str, path: str) -> None:
        """Show one image large, with its revisions (and the compare view)."""
        self.images.open_image(run_id, path)

    @property
    def refresh_thread(self) -> threading.Thread | None:
        """The auto-refresh thread (alive while following changes)."""
        return self._poll_thread

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
        """Read status, runs (and what the filter keeps of them) and which runs
        TensorBoard shows into the parts."""
        try:
            status = self.backend.status()
            runs = self.backend.runs()
            needle = self.run_list.filter
            matching = self.backend.runs(q=needle) if needle else None
        except BackendError as e:
            self._show_error(e)
            return False
        self._generation = status["monitor"]["generation"]
        self._last_error = None
        self.run_list.update(runs, matching)
        try:
            selection: rest.Selection | str = self.backend.selection()
        except BackendError as e:  # the runs and their images are still worth showing
            log.debug("guildimg panel: no selection: %s", e, exc_info=True)
            selection = str(e)
        self.run_list.show_selection(selection)
        self.tensorboard.show_selection(selection, status["tensorboard"])
        self.header.show(status)
        try:
            sources: rest.Sources | str = self.backend.sources()
        except BackendError as e:
            log.debug("guildimg panel: no sources: %s", e, exc_info=True)
            sources = str(e)
        self.header.show_sources(sources)
        return True

    def _reload_status(self) -> None:
        """Show the status again in the header (the monitor's index progress)."""
        with self._lock:
            if self._closed:
                return
            try:
                status = self.backend.status()
            except BackendError as e:
                self._show_error(e)
                return
            self.header.show(status)

    def _on_filter(self) -> None:
        needle = self.run_list.filter
        try:
            matching = self.backend.runs(q=needle) if needle else None
        except BackendError as e:
            self._show_error(e)
            return
        self.run_list.filter_to(matching)

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
        """The id of the run ``key`` names, as the backend's run lookup finds it (the
        one rule, on the server); ValueError with its message when it finds none."""
        if any(run["id"] == key for run in self.run_list.runs):
            return key  # an id the backend listed: its lookup would answer the same
        return self.backend.run_id(key)

    # -- images ---------------------------------------------------------------

    def _load_images(self) -> None:
        note = "No run selected." if self.run_list.runs else "No runs yet."
        self.images.show(self.run_list.selected, note)

    # -- refreshing -------------------------------------------------------------

    def _show_error(self, error: Exception) -> None:
        message = str(error)
        # Logged once while the same error repeats (a server away, polled every second).
        level = logging.DEBUG if message == self._last_error else logging.WARNING
        log.log(level, "guildimg panel: %s", message, exc_info=error)
        self._last_error = message
        self.header.show_error(message)

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
                elif self.header.indexing and not stop.is_set():
                    self._reload_status()  # progress is not in the change feed
                failures = 0
            except BackendError as e:
                failures += 1
                with self._lock:
                    self._show_error(e)
                stop.wait(_RETRY_SECONDS)
            except Exception:
                # A bug in one reload must not end following changes for good, nor
                # leave the panel as it was until the next change: it reloads again.
                log.exception("guildimg panel: reload failed; still following changes")
                failures += 1
                stop.wait(_RETRY_SECONDS)

    # -- TensorBoard ------------------------------------------------------------

    def _on_tb_action(self, action: str) -> None:
        """An "in TensorBoard" button: change the runs TensorBoard shows, then show the
        runs (their ``[TB]``) and the TensorBoard tab's line again. "Add filtered runs"
        acts on the runs the filter keeps, the others on the selected runs."""
        run_list = self.run_list
        runs = run_list.filtered() if action == "filtered" else run_list.selected
        if action == "filtered" and not run_list.filter:
            return  # no filter: the button is off, and "every run" is not what it means
        try:
            order = [run["id"] for run in run_list.runs]
            self.tensorboard.change(action, runs, order)
        except BackendError as e:
            self._show_error(e)
            return
        self.reload()

    def _on_tab(self, change: dict[str, Any]) -> None:
        if change["new"] != 1 or not self.tensorboard.wanted:
            return
        with self._lock:
            self.header.show_starting()
        self.tensorboard.open()

    def _on_tensorboard(self, state: rest.TensorBoardState, src: str) -> None:
        with self._lock:
            if self._closed:
                return
            self.tensorboard.show(state, src)
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
