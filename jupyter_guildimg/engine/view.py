"""What TensorBoard reads: a *view* of the log dir holding only the runs selected.

TensorBoard slows down with hundreds of runs and cannot drop one without a restart,
but its data server follows symlinked run directories and picks up one added or
removed within about a second. So TensorBoard reads a view directory, never the log
dir itself: one symlink per selected run, ``<view dir>/<run log dir name>`` ->
``<log dir>/<run log dir name>``, kept up to date after every monitor pass and on
every selection change. The catalog and every client still cover every run.

Which runs are selected is a :class:`~.selection.Selection`: by default every run
while there are at most ``limit``, else the newest and the running ones.

:class:`TensorBoardView` also estimates how many event files TensorBoard would hold
open for the runs shown (:meth:`TensorBoardView.files_needed`): its data server keeps
one open file per event file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import rest
from .catalog import run_key
from .layout import IMAGES_DIR
from .monitor import PassReport, RunsMonitor, RunView
from .runrecord import Run
from .selection import DEFAULT_LIMIT, Selection, SelectionError, parse_change

__all__ = ["TensorBoardView", "temp_view_dir"]

log = logging.getLogger(__name__)

_RUNNING = "running"
_EVENTS = "tfevents"  # TensorBoard reads the files whose names contain it
# A running run's own event files are counted again after this many seconds; a
# finished run's once per status.
_RECOUNT_RUNNING = 10.0


def temp_view_dir(prefix: str, logdir: str) -> str:
    """A new temporary view dir for ``logdir``, ``<prefix><owner pid>-view-<random>``:
    the pid lets :func:`~jupyter_guildimg.engine.processes.clean_stale_dirs` remove it
    once its owner is gone, as it does temporary log dirs. It is made in the temporary
    directory, or next to ``logdir`` should that be inside it."""
    name = f"{prefix}{os.getpid()}-view-"
    parent = os.path.realpath(tempfile.gettempdir())
    real_logdir = os.path.realpath(logdir)
    if os.path.commonpath([parent, real_logdir]) == real_logdir:
        parent = os.path.dirname(real_logdir)
    return tempfile.mkdtemp(prefix=name, dir=parent)


@dataclass
class _Count:
    """A run's own event files (``.images`` excluded), counted at ``when`` (monotonic)
    while the run had ``status``."""

    files: int
    status: str
    when: float


class TensorBoardView:
    """Keeps ``view_dir`` holding one symlink per selected run of ``logdir``.

    :meth:`attach` it to the monitor writing ``logdir``: it is then updated after every
    pass; :meth:`set_selection` updates it at once. ``limit`` is mode auto's number of
    runs (0: no limit). ``only`` (a predicate on runs) keeps the others out of the view
    whatever the selection: the command line's filters; ``total`` counts the runs it
    keeps.

    New links are made before old ones are removed, so a run that stays selected is
    never missing; the view only ever creates and removes the symlinks it made itself,
    and never one whose target does not exist yet (it is made at a later update).
    ``view_dir`` must not lie inside ``logdir`` nor hold it: TensorBoard would see
    runs twice. Thread-safe.
    """

    def __init__(
        self,
        view_dir: str,
        logdir: str,
        *,
        limit: int = DEFAULT_LIMIT,
        only: Callable[[Run], bool] | None = None,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.view_dir = os.path.abspath(view_dir)
        self.logdir = os.path.abspath(logdir)
        real_view, real_logdir = os.path.realpath(self.view_dir), os.path.realpath(self.logdir)
        if os.path.commonpath([real_view, real_logdir]) in (real_view, real_logdir):
            raise ValueError(
                f"the view dir {self.view_dir!r} and the log dir {self.logdir!r} overlap"
            )
        os.makedirs(self.view_dir, exist_ok=True)
        self._only = only
        self._selection = Selection(limit=limit)
        self._monitor: RunsMonitor | None = None
        self._lock = threading.Lock()
        self._links: dict[str, str] = {}  # name -> target: the links this view made
        self._refused: set[str] = set()  # names taken by something else: said once
        self._shown: tuple[RunView, ...] = ()
        self._keys: frozenset[str] = frozenset()
        self._total = 0
        self._counts: dict[str, _Count] = {}  # by log dir
        self._files_needed = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"TensorBoardView({self.view_dir!r}, {self.logdir!r})"

    @property
    def limit(self) -> int:
        return self._selection.limit

    # -- following the monitor ----------------------------------------------

    def attach(self, monitor: RunsMonitor) -> None:
        """Follow ``monitor``: update after each of its passes, and now."""
        self._monitor = monitor
        monitor.add_listener(self._on_pass)
        self.update()

    def _on_pass(self, report: PassReport) -> None:
        self.update()

    def update(self) -> None:
        """Bring the view dir in line with the monitor's last pass and the selection.
        Cheap when nothing changed: file-system calls only for runs that enter or leave
        the view, and for counting event files (see :meth:`files_needed`)."""
        with self._lock:
            self._update()

    def _update(self) -> None:
        if self._closed:
            return
        views: Sequence[RunView] = () if self._monitor is None else self._monitor.views
        if self._only is not None:
            only = self._only
            views = [view for view in views if only(view.run)]
        shown = self._selection.choose(views)
        self._sync(shown)
        self._shown = tuple(shown)
        self._keys = frozenset(run_key(view.run) for view in shown)
        self._total = len(views)
        self._files_needed = self._count_files(shown)

    def _sync(self, shown: Iterable[RunView]) -> None:
        wanted = {os.path.basename(view.log_dir): view.log_dir for view in shown}
        for name, target in wanted.items():  # first the new ones…
            if self._links.get(name) != target:
                self._link(name, target)
        for name in [name for name in self._links if name not in wanted]:  # …then the old
            self._unlink(name)

    def _link(self, name: str, target: str) -> None:
        path = os.path.join(self.view_dir, name)
        if name in self._links:  # ours, to another target (a run took a freed name)
            self._unlink(name)
        if not os.path.isdir(target):
            return  # its log dir is not made yet: linked at a later update
        try:
            os.symlink(target, path, target_is_directory=True)
        except FileExistsError:
            if name not in self._refused:
                self._refused.add(name)
                log.warning("%r is in the view dir already: run %r is not shown", path, name)
            return
        except OSError:
            log.warning("Cannot link %r in the view dir", name, exc_info=True)
            return
        self._refused.discard(name)
        self._links[name] = target

    def _unlink(self, name: str) -> None:
        path = os.path.join(self.view_dir, name)
        try:
            if os.path.islink(path):
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("Cannot remove %r from the view dir", path, exc_info=True)
            return
        del self._links[name]

    # -- the selection --------------------------------------------------------

    def selection(self) -> rest.Selection:
        """The selection as ``GET selection`` answers it."""
        with self._lock:
            return self._selection_json()

    def _selection_json(self) -> rest.Selection:
        selection = self._selection
        shown, total, limit = len(self._shown), self._total, selection.limit
        if selection.mode == "filter":
            rule = f"filter {selection.filter!r}"
        elif selection.mode == "runs":
            rule = "chosen runs"
        elif not limit:
            rule = "auto: every run"
        elif total > limit:
            rule = f"auto: the {limit:,} newest and every running run"
        else:
            rule = f"auto: every run while there are at most {limit:,}"
        return {
            "mode": selection.mode,
            "runs": [run_key(view.run) for view in self._shown],
            "filter": selection.filter,
            "shown": shown,
            "total": total,
            "limit": limit,
            "summary": f"{shown:,} of {total:,} run{'' if total == 1 else 's'}",
            "rule": rule,
        }

    def set_selection(
        self,
        mode: str,
        runs: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        find: Callable[[str], RunView] | None = None,
    ) -> rest.Selection:
        """Select ``mode`` ("auto", "runs" with ``runs``, or "filter" with ``filter``),
        update the view dir now and answer the new selection. With ``find`` (the
        catalog's :meth:`~jupyter_guildimg.engine.catalog.Catalog.find`) each of
        ``runs`` may be any key ``runs/<key>`` takes (an id, a unique prefix) and is
        stored as the run's key; one that names no run, or several, is refused.
        SelectionError (a ValueError) for anything refused; the selection is then
        unchanged."""
        body: dict[str, Any] = {"mode": mode}
        if runs is not None:
            body["runs"] = list(runs)
        if filter is not None:
            body["filter"] = filter
        return self.put(body, find=find)

    def put(self, body: object, *, find: Callable[[str], RunView] | None = None) -> rest.Selection:
        """:meth:`set_selection` from a ``PUT selection`` body (decoded JSON)."""
        change = parse_change(body)
        keys: list[str] = []
        for key in change.get("runs", []):
            if find is not None:
                try:
                    key = run_key(find(key).run)
                except LookupError as e:  # the catalog's NotFoundError, AmbiguousRunError
                    raise SelectionError(str(e)) from None
            if key not in keys:
                keys.append(key)
        with self._lock:
            self._selection = replace(
                self._selection,
                mode=change["mode"],
                runs=tuple(keys),
                filter=change.get("filter", ""),
            )
            self._update()
            answer = self._selection_json()
        if self._monitor is not None:  # in_tensorboard of runs changed: clients look again
            self._monitor.mark_changed()
        return answer

    def shown(self) -> frozenset[str]:
        """The keys of the runs the view shows (``in_tensorboard``)."""
        return self._keys

    # -- open files -------------------------------------------------------------

    def files_needed(self) -> int:
        """About how many event files TensorBoard holds open for the runs shown (its
        data server keeps one open per event file), as of the last update.

        Counted cheaply: a run's image event files are its revisions kept, known from
        the monitor's view of it without touching the disk (one file per revision in
        ``.images``); its other event files (its own ``*tfevents*`` files mirrored, the
        HParams files) are counted by walking its log dir (``.images`` left out), once
        per run and status, and again every 10 s while it runs. Runs are not shown
        through nested symlinked directories, so this is close to exact."""
        return self._files_needed

    def _count_files(self, shown: Iterable[RunView]) -> int:
        now = time.monotonic()
        counts: dict[str, _Count] = {}
        total = 0
        for view in shown:
            revisions = sum(len(kept) for kept in view.images.values())
            count = self._counts.get(view.log_dir)
            status = view.run.status
            if (
                count is None
                or count.status != status
                or (status == _RUNNING and now - count.when > _RECOUNT_RUNNING)
            ):
                count = _Count(_own_event_files(view.log_dir), status, now)
            counts[view.log_dir] = count
            total += revisions + count.files
        self._counts = counts  # only the runs shown: the others are forgotten
        return total

    # -- the end ------------------------------------------------------------------

    def close(self) -> None:
        """Stop updating the view dir (it is left as it is: remove it with
        :func:`~jupyter_guildimg.engine.processes.remove_tree_soon`)."""
        with self._lock:
            self._closed = True


def _own_event_files(log_dir: str) -> int:
    """The files under ``log_dir`` whose names contain "tfevents", ``.images`` left out;
    0 for a log dir that cannot be read."""
    found = 0
    for dirpath, dirnames, filenames in os.walk(log_dir):
        if dirpath == log_dir and IMAGES_DIR in dirnames:
            dirnames.remove(IMAGES_DIR)
        found += sum(1 for name in filenames if _EVENTS in name)
    return found
