"""The panel's TensorBoard tab: which runs TensorBoard shows ("12 of 10,000 runs"), the
server's warnings about it, and TensorBoard's page in an iframe once it is ready.

Opening the tab starts TensorBoard through the backend, in a thread of the tab's own
(a start can take minutes); meanwhile, and after a failure, the tab shows TensorBoard's
state in the words of its ``summary``. The tab also changes which runs TensorBoard
shows (:meth:`TensorBoardTab.change`, for the run list's "in TensorBoard" buttons).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence

import ipywidgets as widgets

from .. import rest
from ..engine.tbprocess import status_summary
from .backend import Backend, BackendError

__all__ = ["TensorBoardTab", "selection_line"]

_HOW_TO_CHANGE = "the buttons under the run list"


def selection_line(selection: rest.Selection) -> str:
    """``12 of 10,000 runs (auto: the 200 newest and every running run)``: the
    server's words for how many runs TensorBoard shows, and by which rule."""
    return f"{selection['summary']} ({selection['rule']})"


class TensorBoardTab:
    """The TensorBoard tab (``box``): the runs TensorBoard shows (``selection_html``)
    and the server's warnings (``warnings_html``) above ``frame``, TensorBoard's page in
    an iframe once it is ready, its state until then. :meth:`open` starts TensorBoard in
    a thread of its own, which calls ``on_done(state, src)`` (without the lock) once it
    is ready or failed; the panel then calls :meth:`show`. The panel calls
    :meth:`show_selection` after every reload."""

    def __init__(
        self,
        backend: Backend,
        height: int,
        on_done: Callable[[rest.TensorBoardState, str], None],
    ) -> None:
        self.backend = backend
        self.height = height
        self._on_done = on_done
        self._thread: threading.Thread | None = None
        self.frame = widgets.HTML("TensorBoard starts when this tab is opened.")
        self.frame.layout.width = "100%"
        self.frame.add_class("guildimg-tensorboard")
        # Widgets of their own: a new line must not load TensorBoard's iframe again.
        self.selection_html = widgets.HTML("TensorBoard shows: …")
        self.selection_html.add_class("guildimg-tensorboard-selection")
        self.warnings_html = widgets.HTML()
        self.warnings_html.add_class("guildimg-tensorboard-warnings")
        self.warnings_html.layout.display = "none"
        self.box = widgets.VBox([self.selection_html, self.warnings_html, self.frame])

    def show_selection(self, selection: rest.Selection | str, state: rest.TensorBoardState) -> None:
        """Which runs TensorBoard shows (or why that is not known: a message), and the
        server's warnings about it (each in its own paragraph, marked ⚠; none: the
        warnings are hidden)."""
        if isinstance(selection, str):
            value = f"Which runs TensorBoard shows is not known: {html.escape(selection)}"
        else:
            count, rule = html.escape(selection["summary"]), html.escape(selection["rule"])
            value = f"TensorBoard shows <b>{count}</b> ({rule}) · change: {_HOW_TO_CHANGE}"
        if self.selection_html.value != value:
            self.selection_html.value = value
        warnings = state.get("warnings", [])
        shown = "".join(f"<p>⚠ {html.escape(text)}</p>" for text in warnings)
        if self.warnings_html.value != shown:
            self.warnings_html.value = shown
        self.warnings_html.layout.display = None if warnings else "none"

    def change(self, action: str, runs: Sequence[str], order: Sequence[str] = ()) -> rest.Selection:
        """Ask the backend to show ``runs`` (run ids: the selected ones, or for
        ``"filtered"`` those the filter keeps) too (``"add"``, ``"filtered"``), only
        those (``"only"``), or the runs its policy picks (``"auto"``); the new
        selection. A union is put in ``order`` (the run list's ids, newest first; runs
        not in it last), as the JupyterLab sidebar puts it."""
        if action == "auto":
            return self.backend.set_selection("auto")
        if action == "only":
            return self.backend.set_selection("runs", runs=list(runs))
        if action not in ("add", "filtered"):
            raise ValueError(f"no such action: {action!r}")
        shown = self.backend.selection()["runs"]
        union = shown + [run for run in runs if run not in shown]
        rank = {run: i for i, run in enumerate(order)}
        union.sort(key=lambda run: rank.get(run, len(rank)))  # stable: unknown keep theirs
        return self.backend.set_selection("runs", runs=union)

    @property
    def wanted(self) -> bool:
        """Whether opening the tab should start TensorBoard: it is neither being started
        nor shown already."""
        busy = self._thread is not None and self._thread.is_alive()
        return not busy and "<iframe" not in self.frame.value

    def open(self) -> None:
        """Start TensorBoard (in a thread), saying so meanwhile."""
        self.frame.value = f"<p>{html.escape(status_summary('starting'))}</p>"
        self._thread = threading.Thread(target=self._start, name="guildimg-panel-tb", daemon=True)
        self._thread.start()

    def show(self, state: rest.TensorBoardState, src: str) -> None:
        """TensorBoard's page at ``src`` when ``state`` is ready, else its summary and
        the whole reason (a retry is opening the tab again)."""
        if state["status"] == "ready":
            self.frame.value = (
                f'<iframe src="{html.escape(src)}" title="TensorBoard" '
                f'style="width:100%;height:{int(self.height)}px;border:0"></iframe>'
            )
            return
        reason = state["reason"]
        self.frame.value = (
            f"<p>{html.escape(state['summary'])}</p>"
            + (f"<pre>{html.escape(reason)}</pre>" if reason else "")
            + "<p>Open the Images tab and this one again to retry.</p>"
        )
        self._thread = None

    def _start(self) -> None:
        try:
            state = self.backend.start_tensorboard()
            src = self.backend.tensorboard_src()
        except BackendError as e:  # shown as TensorBoard's failure, with this reason
            state, src = _failed(str(e)), ""
        self._on_done(state, src)


def _failed(reason: str) -> rest.TensorBoardState:
    """A failed TensorBoard's state, for a start the backend did not answer."""
    return {
        "status": "failed",
        "summary": status_summary("failed", reason),
        "reason": reason,
        "port": None,
        "pid": None,
        "restarts": 0,
        "stderr_tail": [],
        "started": None,
        "files": {"needed": 0, "limit": 0},
        "warnings": [],
    }
