"""The panel's run list: a filter box, one page of runs in a multi-select, a pager, and
the "in TensorBoard" controls for the selected runs and for the runs the filter keeps.

It keeps the runs as the backend last listed them, those the filter's text matches (the
backend filters: ``runs(q=...)``), which runs are selected, and the page shown. A
selection outlives the filter and the paging: runs hidden by either stay selected. A run
TensorBoard shows is marked ``[TB]``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from .. import rest
from .parts import Quiet, local_time
from .tensorboardtab import selection_line

__all__ = ["PAGE_SIZE", "TB_ACTIONS", "RunList", "run_label"]

PAGE_SIZE = 200  # runs per page of the list

TB_ACTIONS = ("add", "only", "filtered", "auto")
"""What the "in TensorBoard" buttons ask for: the selected runs added to those TensorBoard
shows, only the selected runs, the runs the filter keeps (:meth:`RunList.filtered`) added
to them, or back to the policy."""


_MIN_ROWS = 5  # the list's least height in rows, so a few runs still look like a list


def run_label(run: rest.Run) -> str:
    """``short_id  op  started  status  [N img]  [TB]  label``, empty fields left out;
    ``[TB]`` when TensorBoard shows the run. The user's label comes last: it is the one
    field of any length, so a narrow list cuts it rather than the others (the whole of
    it is in :meth:`RunList.details`)."""
    parts = [run["short_id"], run["operation"], local_time(run["started"], "%Y-%m-%d %H:%M")]
    parts += [run["status"], f"[{run['image_count']} img]"]
    parts += ["[TB]" if run.get("in_tensorboard") else "", run["label"] or ""]
    return "  ".join(part for part in parts if part)


def _details(runs: list[rest.Run]) -> str:
    """HTML naming the selected runs in full (a run's label wraps instead of being cut)."""
    if not runs:
        return ""
    if len(runs) > 1:
        return f"{len(runs)} runs selected"
    run = runs[0]
    parts = [f"<code>{html.escape(run['short_id'])}</code>", html.escape(run["operation"])]
    parts.append(html.escape(run["label"] or run["name"]))
    return " · ".join(part for part in parts if part)


class RunList:
    """The run list (``box``). The panel calls every method with ``lock`` held and
    gives it the listings (:meth:`update`, :meth:`filter_to`). The widgets' callbacks
    take ``lock`` and call back into the panel: ``on_select`` after the user changed
    the selection, ``on_filter`` after the filter's text changed (the panel then asks
    the backend for the matching runs), ``on_tensorboard(action)`` when an "in
    TensorBoard" button is clicked (one of :data:`TB_ACTIONS`)."""

    def __init__(
        self,
        lock: threading.RLock,
        height: int,
        on_select: Callable[[], None],
        on_filter: Callable[[], None],
        on_tensorboard: Callable[[str], None],
    ) -> None:
        self._lock = lock
        self._on_select = on_select
        self._on_filter = on_filter
        self._on_tensorboard = on_tensorboard
        self._quietly = Quiet()  # on while this code, not the user, sets the selection
        self.runs: list[rest.Run] = []  # every run, newest first
        self.matching: list[rest.Run] = []  # those the filter keeps
        self.selected: list[str] = []  # run ids, possibly on other pages or filtered out
        self.chosen = False  # a selection was made: stop following the newest run
        self.page = 0

        self.filter_text = widgets.Text(placeholder="filter: id, operation, label, status")
        self.filter_text.observe(self._on_filter_text, "value")
        # As many rows as there are runs on the page, up to what the panel's height holds:
        # a list of three runs is not a tall empty box.
        self._max_rows = max(_MIN_ROWS, (height - 120) // 20)
        self.runs_select = widgets.SelectMultiple(options=[], rows=_MIN_ROWS)
        self.runs_select.layout.width = "100%"
        self.details = widgets.HTML()
        self.details.add_class("guildimg-run-details")
        self.runs_select.observe(self._on_pick, "value")
        self.prev_page = widgets.Button(description="◀", layout=widgets.Layout(width="40px"))
        self.next_page = widgets.Button(description="▶", layout=widgets.Layout(width="40px"))
        self.prev_page.on_click(lambda _: self._turn(-1))
        self.next_page.on_click(lambda _: self._turn(1))
        self.page_label = widgets.Label()
        pager = widgets.HBox([self.prev_page, self.page_label, self.next_page])
        self.tb_label = widgets.HTML("In TensorBoard: …")
        self.tb_label.add_class("guildimg-tb-selection")
        self.show_in_tb = self._tb_button("Show in TensorBoard", "add", "the selected runs too")
        self.only_these = self._tb_button("Only these", "only", "only the selected runs")
        self.add_filtered = self._tb_button(
            "Add filtered runs", "filtered", "the runs the filter lists too"
        )
        self.auto_tb = self._tb_button("Auto", "auto", "the runs its policy picks")
        buttons = [self.show_in_tb, self.only_these, self.add_filtered, self.auto_tb]
        tb_box = widgets.VBox([self.tb_label, widgets.HBox(buttons)])
        self.box = widgets.VBox([self.filter_text, self.runs_select, self.details, pager, tb_box])
        self.box.layout.width = "40%"

    def _tb_button(self, text: str, action: str, what: str) -> widgets.Button:
        button = widgets.Button(description=text, tooltip=f"TensorBoard shows {what}")
        button.layout.width = "auto"
        button.add_class(f"guildimg-tb-{action}")
        button.on_click(lambda _: self._tensorboard(action))
        return button

    @property
    def filter(self) -> str:
        """The filter's text, for the backend's ``q`` ("" shows every run)."""
        return str(self.filter_text.value).strip()

    def filtered(self) -> list[str]:
        """The ids of the runs the filter keeps, newest first, on every page (none
        without filter text: "Add filtered runs" is not "every run")."""
        return [run["id"] for run in self.matching] if self.filter else []

    def update(self, runs: list[rest.Run], matching: list[rest.Run] | None = None) -> None:
        """Take a fresh listing (``matching``: what the filter keeps of it; None: all).
        Selected runs that are gone are dropped; until a selection is made, the newest
        run is the one selected."""
        self.runs = runs
        self.matching = runs if matching is None else matching
        known = {run["id"] for run in runs}
        if self.chosen:
            self.selected = [run_id for run_id in self.selected if run_id in known]
        else:
            self.selected = [runs[0]["id"]] if runs else []

    def filter_to(self, matching: list[rest.Run] | None) -> None:
        """Show what a new filter text keeps (None: every run), from the first page."""
        self.matching = self.runs if matching is None else matching
        self.page = 0
        self.render()

    def choose(self, run_ids: Sequence[str]) -> None:
        """Select these runs (ids as listed) and turn to the page of the first."""
        self.selected, self.chosen = list(run_ids), True
        if self.selected:
            self.page = self._page_of(self.selected[0])
        self.render()

    def show_selection(self, selection: rest.Selection | str) -> None:
        """Say which runs TensorBoard shows ("12 of 200 runs (…)"), or why that is not
        known (a message); "Auto" is off while the policy picks them ("Show" and "Only
        these": while no run is selected)."""
        line = selection if isinstance(selection, str) else selection_line(selection)
        self.tb_label.value = f"In TensorBoard: {html.escape(line)}"
        self.auto_tb.disabled = not isinstance(selection, str) and selection["mode"] == "auto"

    def render(self) -> None:
        pages = max(1, -(-len(self.matching) // PAGE_SIZE))
        self.page = min(max(self.page, 0), pages - 1)
        start = self.page * PAGE_SIZE
        shown = self.matching[start : start + PAGE_SIZE]
        options = tuple((run_label(run), run["id"]) for run in shown)
        on_page = {run["id"] for run in shown}
        with self._quietly():
            if tuple(self.runs_select.options) != options:
                self.runs_select.options = options
                self.runs_select.rows = min(self._max_rows, max(_MIN_ROWS, len(options)))
            self.runs_select.value = tuple(i for i in self.selected if i in on_page)
        total = len(self.matching)
        first = start + 1 if total else 0
        self.page_label.value = f"{first}–{start + len(shown)} of {total} runs"
        self.prev_page.disabled = self.page == 0
        self.next_page.disabled = self.page >= pages - 1
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.show_in_tb.disabled = self.only_these.disabled = not self.selected
        self.add_filtered.disabled = not self.filter
        by_id = {run["id"]: run for run in self.runs}
        self.details.value = _details([by_id[i] for i in self.selected if i in by_id])

    def _page_of(self, run_id: str) -> int:
        ids = [run["id"] for run in self.matching]
        return ids.index(run_id) // PAGE_SIZE if run_id in ids else self.page

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._quietly.active:
            return
        with self._lock:
            on_page = {value for _label, value in self.runs_select.options}
            kept = [run_id for run_id in self.selected if run_id not in on_page]
            self.selected, self.chosen = kept + list(change["new"]), True
            self._sync_buttons()
            self._on_select()

    def _tensorboard(self, action: str) -> None:
        with self._lock:
            self._on_tensorboard(action)

    def _on_filter_text(self, _change: dict[str, Any]) -> None:
        with self._lock:
            self._on_filter()

    def _turn(self, step: int) -> None:
        with self._lock:
            self.page += step
            self.render()
