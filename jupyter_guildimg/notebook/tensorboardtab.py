"""The panel's TensorBoard tab: TensorBoard's page in an iframe once it is ready.

Opening the tab starts TensorBoard through the backend, in a thread of the tab's own
(a start can take minutes); meanwhile, and after a failure, the tab shows TensorBoard's
state in the words of its ``summary``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as widgets

from .. import rest
from ..engine.tbprocess import status_summary
from .backend import Backend, BackendError

__all__ = ["TensorBoardTab"]


class TensorBoardTab:
    """The TensorBoard tab (``frame``): TensorBoard's page in an iframe once it is
    ready, its state until then. :meth:`open` starts TensorBoard in a thread of its own,
    which calls ``on_done(state, src)`` (without the lock) once it is ready or failed;
    the panel then calls :meth:`show`."""

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
    }
