"""A monitor pass's writing side: the log dir brought in step with the runs it saw.

:class:`RunLogs` is what a :class:`~.monitor.RunsMonitor` keeps between passes: each
run's :class:`~.runlog.RunLog` (its part of the log dir) by run dir, the views
handed out, and the names and places the last whole pass gave the runs.

:class:`LogdirPass` is one pass's work, once the monitor has listed the runs (see
:mod:`.targets`) and taken the log dir: the runs read are synced, the known runs
the pass could not see are kept as they were, and the others are removed (their
log dirs, and whatever else in the log dir no run names). Runs are named
(:mod:`.naming`) and listed newest first. A targeted pass whose runs are all known
and keep their names and order syncs just those runs (:meth:`LogdirPass.update_in_place`).
A full pass meeting many new runs indexes them in batches (:class:`.targets.IndexProgress`),
their log dirs made by a few threads at once, publishing after each batch.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from . import layout
from .naming import assign_names, default_run_name, safe_name
from .runlog import PassReport, Problem, RunLog, RunView
from .runrecord import Run, newest_first_key
from .targets import IndexProgress, RunTargets

__all__ = ["INDEX_THREADS", "LogdirPass", "PassConfig", "RunLogs"]

log = logging.getLogger(__name__)

#: Threads that make new runs' log dirs during a first index: creating files waits on
#: the disk with the GIL released, so a few overlap it (more only add contention).
INDEX_THREADS = 2


class PassConfig(Protocol):
    """What a pass reads from its monitor (a ``RunsMonitor``'s attributes of these
    names): where and what to write, what it remembers across passes, and where
    problems go."""

    logdir: str
    log_images: bool
    log_hparams: bool
    max_images_per_run: int | None
    max_revisions_per_image: int | None
    max_image_bytes: int | None
    revision_steps: bool
    targets: RunTargets
    index: IndexProgress
    problems: collections.deque[Problem]


class RunLogs:
    """What a monitor keeps between passes: ``logs``, each run's log by run dir;
    ``views``, newest first, replaced whole by each pass (and each batch it
    publishes); and the last whole pass's ``names`` (run dir → log dir name) and
    ``positions`` (run dir → place in ``views``), which a targeted pass changing
    neither reuses."""

    def __init__(self) -> None:
        self.logs: dict[str, RunLog] = {}
        self.views: tuple[RunView, ...] = ()
        self.names: dict[str, str] = {}
        self.positions: dict[str, int] = {}

    def known_runs(self) -> Mapping[str, Run]:
        """The runs known now, by dir (a snapshot)."""
        return {run_dir: run_log.run for run_dir, run_log in list(self.logs.items())}


class LogdirPass:
    """One pass's work on ``runs`` for a monitor (``config``), reported in ``report``,
    problems included (:meth:`problem`, which the pass's listing uses too).
    ``run_name_cb`` names runs (see :func:`.naming.assign_names`); ``publish()`` is
    called after each batch a full pass publishes, ``runs.views`` and ``report.runs``
    saying what is listed so far."""

    def __init__(
        self,
        runs: RunLogs,
        config: PassConfig,
        report: PassReport,
        run_name_cb: Callable[[Run], str] | None,
        publish: Callable[[], None],
    ) -> None:
        self.runs = runs
        self.config = config
        self.report = report
        self._run_name_cb = run_name_cb
        self._publish_cb = publish

    def problem(self, run: str, path: str, message: str) -> None:
        """Report a problem, in the report and the monitor's ``problems``: ``run`` is
        the run's log dir name, "" for what no run owns (see :class:`.runlog.Problem`)."""
        log.warning("Problem: run %r, path %r: %r", run, path, message)
        item = Problem(time.time(), run, path, message)
        self.config.problems.append(item)
        self.report.problems.append(item)

    def update_all(self, read: list[Run], kept: list[Run], *, full: bool) -> None:
        """The whole way: every run named and ordered again, the runs gone removed,
        the ``read`` ones synced (``kept``: known runs left as they were). A ``full``
        pass (one that listed every run) indexes many new runs in batches."""
        config, report, state = self.config, self.report, self.runs
        state.positions = {}  # until this pass has made the views again
        # Newest first, always: a targeted pass reads its runs in no particular order,
        # and may have read every known run (then none is kept).
        runs = sorted([*read, *kept], key=newest_first_key, reverse=True)
        names = assign_names(runs, self._run_name_cb)
        current = {run.dir for run in runs}
        for run_dir in [d for d in state.logs if d not in current]:
            report.runs_removed.append(os.path.basename(state.logs.pop(run_dir).log_dir))
            config.targets.forget(run_dir)
        for run in runs:  # renamed runs (a new label) keep their log dir's contents
            run_log = state.logs.get(run.dir)
            target = os.path.join(config.logdir, names[run.dir])
            if run_log is not None and run_log.log_dir != target:
                layout.safe_remove(target)
                run_log.move_to(target)
        wanted = set(names.values())
        for name in os.listdir(config.logdir):
            if name not in wanted:
                layout.safe_remove(os.path.join(config.logdir, name))
        kept_dirs = {run.dir for run in kept}
        if full:
            config.index.start(len(runs), sum(run.dir not in state.logs for run in runs))
        batching = full and config.index.batching
        ordered = sorted(runs, key=newest_first_key, reverse=True) if batching else runs
        # Many new runs (a first index): their log dirs are made by a few threads at
        # once, in order; each is taken here, in this thread, once made and synced.
        new = [run for run in ordered if run.dir not in state.logs] if batching else []
        with contextlib.ExitStack() as stack:
            made: Iterator[RunLog] = iter(())
            if new:
                pool = concurrent.futures.ThreadPoolExecutor(
                    INDEX_THREADS, thread_name_prefix="guildimg-index"
                )
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                made = pool.map(lambda run: self._new_log(run, names[run.dir]), new)
            new_dirs = {run.dir for run in new}
            for run in ordered:
                if run.dir in kept_dirs:  # not seen this pass: left as it was
                    report.images += state.logs[run.dir].summaries.image_count
                elif run.dir in new_dirs:
                    run_log = state.logs[run.dir] = next(made)
                    report.runs_added.append(names[run.dir])
                    report.images += run_log.summaries.image_count
                else:
                    self._update(run, names[run.dir])
                if full and config.index.synced():
                    self._publish(runs, names)
        report.runs = len(runs)
        state.views = tuple(state.logs[run.dir].view(names[run.dir]) for run in runs)
        state.names = names
        state.positions = {run.dir: i for i, run in enumerate(runs)}

    def update_in_place(self, read: list[Run], kept: list[Run]) -> bool:
        """A targeted pass whose runs are all known, keep their names and their places
        in the newest-first order: just those runs are synced and their views replaced,
        with no work for each other run (at 10,000 runs, naming and ordering them all
        again cost more than the image that changed). False, having done nothing, when
        the pass must go the whole way: a run new, gone, renamed or moved."""
        state = self.runs
        if len(read) + len(kept) != len(state.logs) or len(state.positions) != len(state.views):
            return False
        name_of = self._run_name_cb or default_run_name
        for run in read:
            run_log = state.logs.get(run.dir)
            if run_log is None or run.dir not in state.positions:
                return False
            old = run_log.run
            if newest_first_key(run) != newest_first_key(old):
                return False
            if run is not old and safe_name(name_of(run)) != safe_name(name_of(old)):
                return False
        views = list(state.views)
        for run in read:
            name = state.names[run.dir]
            self._update(run, name)
            views[state.positions[run.dir]] = state.logs[run.dir].view(name)
        self.report.runs = len(views)
        self.report.images = sum(r.summaries.image_count for r in state.logs.values())
        state.views = tuple(views)
        return True

    def _new_log(self, run: Run, name: str) -> RunLog:
        """A new run's log, made and synced (an index thread may call this: it
        touches nothing shared but the report's lists and the problems)."""
        config = self.config
        run_log = RunLog(
            run,
            os.path.join(config.logdir, name),
            config.max_images_per_run,
            config.max_revisions_per_image,
            config.max_image_bytes,
            revision_steps=config.revision_steps,
        )
        self._sync(run, name, run_log)
        return run_log

    def _update(self, run: Run, name: str) -> None:
        """Bring one run listed by the pass up to date (made if new)."""
        report, logs, targets = self.report, self.runs.logs, self.config.targets
        run_log = logs.get(run.dir)
        if run_log is None:
            run_log = logs[run.dir] = self._new_log(run, name)
            report.runs_added.append(name)
            report.images += run_log.summaries.image_count
            return
        if run_log.run != run:
            report.runs_changed.append(name)
            targets.changed(run.dir)
        if self._sync(run, name, run_log):
            targets.changed(run.dir)
        report.images += run_log.summaries.image_count

    def _publish(self, runs: list[Run], names: Mapping[str, str]) -> None:
        """Publish a batch of a full pass: the views of the runs known or synced so
        far (the others are not listed yet), then the monitor's ``publish()``."""
        logs = self.runs.logs
        self.runs.views = tuple(
            logs[run.dir].view(names[run.dir]) for run in runs if run.dir in logs
        )
        self.report.runs = len(self.runs.views)
        self._publish_cb()

    def _sync(self, run: Run, name: str, run_log: RunLog) -> bool:
        """Bring ``run_log`` up to date; whether it wrote something."""
        written = 0

        def problem(path: str, message: str) -> None:
            self.problem(name, path, message)

        try:
            paths = run_log.sync(
                run, problem, images=self.config.log_images, hparams=self.config.log_hparams
            )
            for path in paths:
                self.report.written.append((name, path))
            written = len(paths)
        except FileNotFoundError:
            if os.path.isdir(run.dir):
                log.warning("Run %r: a file vanished during the pass", name, exc_info=True)
            else:
                log.info("Run %r vanished during the pass", name)
        except Exception as e:
            log.warning("Run %r: pass failed", name, exc_info=True)
            problem("", f"pass failed: {type(e).__name__}: {e}")
        return written > 0
