"""The notebook panel's header: what TensorBoard and the monitor are doing, which
sources are watched and where the monitor runs, and the Refresh and Auto-refresh
controls (the panel wires them)."""

from __future__ import annotations

import html

import ipywidgets as widgets

from .. import rest
from ..engine.tbprocess import status_summary
from .parts import local_time

__all__ = ["PanelHeader", "indexing_text", "sources_text"]

_KIND_WORDS = {"guild": "Guild home", "dir": "folder of runs"}


def indexing_text(index: rest.IndexProgress) -> str:
    """ "Indexing 1,200 of 10,000 runs…" ("Indexing runs…" until the pass listed them)."""
    if index["found"] > 0:
        return f"Indexing {index['indexed']:,} of {index['found']:,} runs…"
    return "Indexing runs…"


def sources_text(sources: rest.Sources) -> str:
    """HTML naming each watched source by its label, its kind and, when it is not
    there yet, that it will be watched once it appears; the full path on hover."""
    if not sources["details"]:
        return "Watching no sources"
    named = []
    for detail in sources["details"]:
        kind = _KIND_WORDS.get(detail["kind"], detail["kind"])
        note = kind if detail["exists"] else f"{kind}, not there yet"
        named.append(
            f'<code title="{html.escape(detail["path"])}">{html.escape(detail["label"])}</code>'
            f" ({html.escape(note)})"
        )
    return "Watching " + ", ".join(named)


class PanelHeader:
    """The header (``box``): TensorBoard's state and the monitor's counts
    (``status_html``), or while it indexes how far it is, the Refresh button and the
    Auto-refresh checkbox; below them the watched sources and where the monitor runs
    (``sources_html``: ``description`` is the backend's)."""

    def __init__(self, description: str) -> None:
        self._status: rest.Status | None = None  # the last status shown
        self._description = description
        self._starting = False  # TensorBoard is being started: say so until the next status
        self.status_html = widgets.HTML("Loading…")
        self.sources_html = widgets.HTML(self._where())
        self.sources_html.add_class("guildimg-sources")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("guildimg-refresh")
        self.auto_refresh = widgets.Checkbox(value=True, description="Auto-refresh", indent=False)
        controls = widgets.HBox([self.status_html, self.refresh_button, self.auto_refresh])
        controls.layout.align_items = "center"
        controls.layout.justify_content = "space-between"
        self.box = widgets.VBox([controls, self.sources_html])

    def show(self, status: rest.Status) -> None:
        """Show ``status`` (``GET status``)."""
        self._status, self._starting = status, False
        self._render()

    def show_sources(self, sources: rest.Sources | str) -> None:
        """Show the watched ``sources`` (``GET sources``), or why they are unknown."""
        if isinstance(sources, str):
            text = f"Watched sources unknown: {html.escape(sources)}"
        else:
            text = sources_text(sources)
        self.sources_html.value = f"{text} · {self._where()}"

    def show_starting(self) -> None:
        """Say TensorBoard is starting (a start was just asked for), unless it is ready."""
        if self._status is not None and self._status["tensorboard"]["status"] != "ready":
            self._starting = True
            self._render()

    @property
    def indexing(self) -> bool:
        """Whether the last status shown says the monitor is indexing."""
        index = None if self._status is None else self._status["monitor"].get("index")
        return index is not None and not index["done"]

    def show_error(self, message: str) -> None:
        self.status_html.value = f"<b>⚠ {html.escape(message)}</b>"

    def _where(self) -> str:
        return f"<i>monitor: {html.escape(self._description)}</i>"

    def _render(self) -> None:
        if self._status is None:
            return
        monitor, tensorboard = self._status["monitor"], self._status["tensorboard"]
        if self._starting:
            state = f"<b>{html.escape(status_summary('starting'))}</b>"
        else:
            state = f"<b>{html.escape(tensorboard['summary'])}</b>"
            if tensorboard["status"] == "failed" and tensorboard["reason"]:
                state = f'<span title="{html.escape(tensorboard["reason"])}">{state}</span>'
        parts = [state]
        if self.indexing:
            parts.append(f"<b>{html.escape(indexing_text(monitor['index']))}</b>")
        else:
            parts += [
                f"{monitor['runs']} runs",
                f"{monitor['images']} images",
                f"last pass {local_time(monitor['last_pass'], '%H:%M:%S') or '–'}",
            ]
        if warnings := len(tensorboard.get("warnings", [])):
            parts.append(
                f"⚠ {warnings} warning{'s' if warnings > 1 else ''} on the TensorBoard tab"
            )
        self.status_html.value = " · ".join(parts)
