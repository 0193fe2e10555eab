"""A monitor pass's writing side: the log dir brought in step with the runs it saw.

:class:`~.runlog.RunLogs` is what a :class:`~.monitor.RunsMonitor` keeps between
passes: each run's :class:`~.runlog.RunLog` (its part of the log dir) by run dir, the
views handed out, and the names and places the last whole pass gave the runs.

:class:`LogdirPass` is one pass's work, once the monitor has listed the runs (see
:mod:`.targets`) and taken the log dir: the runs read are synced, the known runs
the pass could not see are kept as they were, and the others are removed (their
log dirs, and whatever else in the log dir no run names). Runs are named
(:mod:`.naming`) and listed newest first. A targeted pass whose runs are all known
and keep their names and order syncs just those runs (:meth:`LogdirPass.update_in_place`).
A full pass meeting many new runs indexes them in batches (:class:`.targets.IndexProgress`),
publishing after each batch; the log dirs of many new runs are made by a few threads
at once, or by index children (:mod:`.indexchild`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Protocol

from . import gcfreeze, layout
from .indexchild import (
    INDEX_THREADS,
    IndexChild,
    IndexedRun,
    IndexSettings,
    children_for,
    index_in_children,
    make_run_log,
)
from .naming import assign_names, default_run_name, safe_name
from .runlog import PassReport, Problem, RunLog, RunLogs, sync_run
from .runrecord import Run, newest_first_key
from .targets import FIRST_BATCH, IndexProgress, RunTargets

__all__ = ["INDEX_THREADS", "LogdirPass", "PassConfig"]  # INDEX_THREADS: .indexchild's

log = logging.getLogger(__name__)

#: Seconds between looks, during a routine full pass, for runs changed meanwhile.
URGENT_CHECK = 0.02
#: A pass meeting at least this many new runs has their log dirs made in parallel
#: (see ``_made``): creating their files waits on the disk. Not with
#: ``index_process`` (a server): there two threads taking the interpreter lock in
#: turn while the newest runs are read first raised Jupyter's p95 from a median of
#: 2.3× a server without the extension to 3.5× (three rounds each).
PARALLEL_NEW = 8


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
    index_process: bool
    freeze_after_index: bool
    targets: RunTargets
    index: IndexProgress
    problems: collections.deque[Problem]

    @property
    def closed(self) -> bool: ...

    def acquire_logdir(self) -> None: ...


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
        urgent: Callable[[], list[Run]] | None = None,
    ) -> None:
        self.runs = runs
        self.config = config
        self.report = report
        self._run_name_cb = run_name_cb
        self._publish_cb = publish
        self._urgent = urgent
        self._early: dict[str, Run] = {}  # runs synced while the pass listed its runs
        self._next_early = 0.0  # when sync_while_listing looks again (monotonic)

    def problem(self, run: str, path: str, message: str) -> None:
        """Report a problem, in the report and the monitor's ``problems``: ``run`` is
        the run's log dir name, "" for what no run owns (see :class:`.runlog.Problem`)."""
        log.warning("Problem: run %r, path %r: %r", run, path, message)
        item = Problem(time.time(), run, path, message)
        self.config.problems.append(item)
        self.report.problems.append(item)

    def update_all(self, read: list[Run], kept: Collection[Run], *, full: bool) -> None:
        """The whole way: every run named and ordered again, the runs gone removed,
        the ``read`` ones synced (``kept``: known runs left as they were). A ``full``
        pass (one that listed every run) indexes many new runs in batches."""
        try:
            self._update_all(read, kept, full)
        finally:
            self.runs.touch()  # runs added, removed, synced: known_runs() reads them all

    def _update_all(self, read: list[Run], kept: Collection[Run], full: bool) -> None:
        config, report, state = self.config, self.report, self.runs
        places, state.positions = state.positions, {}  # until this pass made the views
        state.image_total = None  # until this pass counted them all
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
        # Many new runs (a first index; outside a server, also the newest runs read
        # before it, many runs appearing at once): their log dirs are made elsewhere
        # (a child process, else a few threads overlapping the file creation), in
        # order; each is taken here, in this thread, once made and synced.
        new = [run for run in runs if run.dir not in state.logs]
        if not batching and (len(new) < PARALLEL_NEW or config.index_process):
            new = []
        # Runs that changed while a routine full pass goes through the others are
        # synced and listed at once (run dir -> the run as read then), not after it.
        urgent = full and not batching and self._same_places(runs, names, places)
        fresh: dict[str, Run] = dict(self._early)
        check_at = time.monotonic() + URGENT_CHECK
        with contextlib.ExitStack() as stack:
            made = self._made(new, names, stack) if new else iter(())
            new_dirs = {run.dir for run in new}
            for run in runs:
                if urgent and time.monotonic() >= check_at:
                    fresh.update(self._sync_urgent(names, places))
                    check_at = time.monotonic() + URGENT_CHECK
                if new and config.closed:  # nothing more to be written in its log dir
                    raise RuntimeError("the monitor was closed during its index")
                if run.dir in kept_dirs:  # not seen this pass: left as it was
                    report.images += state.logs[run.dir].summaries.image_count
                elif run.dir in new_dirs:
                    run_log = state.logs[run.dir] = self._take(next(made), names[run.dir])
                    report.runs_added.append(names[run.dir])
                    report.images += run_log.summaries.image_count
                    if config.freeze_after_index:
                        gcfreeze.freeze_every(len(report.runs_added))
                else:
                    self._update(fresh.get(run.dir, run), names[run.dir])
                if full and config.index.synced():
                    self._publish(runs, names)
        report.runs = len(runs)
        state.views = tuple(state.logs[run.dir].view(names[run.dir]) for run in runs)
        state.names = names
        state.positions = {run.dir: i for i, run in enumerate(runs)}
        state.image_total = report.images

    def update_in_place(self, read: list[Run], kept: Collection[Run]) -> bool:
        """A targeted pass whose runs are all known, keep their names and their places
        in the newest-first order: just those runs are synced and their views replaced,
        with no work for each other run (at 10,000 runs, naming and ordering them all
        again cost more than the image that changed). False, having done nothing, when
        the pass must go the whole way: a run new, gone, renamed or moved."""
        state = self.runs
        if len(read) + len(kept) != len(state.logs) or len(state.positions) != len(state.views):
            return False
        if not all(self._keeps_place(run, state.positions) for run in read):
            return False
        total = state.image_total
        if total is None:  # a pass that counted them all did not finish
            total = sum(r.summaries.image_count for r in state.logs.values())
        before = sum(state.logs[run.dir].summaries.image_count for run in read)
        self.report.images = 0  # the read runs' images, as _update counts them
        views = list(state.views)
        for run in read:
            name = state.names[run.dir]
            self._update(run, name)
            views[state.positions[run.dir]] = state.logs[run.dir].view(name)
        self.report.runs = len(views)
        self.report.images += total - before
        state.image_total = self.report.images
        state.views = tuple(views)
        return True

    def _keeps_place(self, run: Run, places: Mapping[str, int]) -> bool:
        """Whether ``run`` is known, and keeps its name and its place in the views."""
        run_log = self.runs.logs.get(run.dir)
        if run_log is None or run.dir not in places:
            return False
        old = run_log.run
        if newest_first_key(run) != newest_first_key(old):
            return False
        name_of = self._run_name_cb or default_run_name
        return run is old or safe_name(name_of(run)) == safe_name(name_of(old))

    def _same_places(
        self, runs: list[Run], names: Mapping[str, str], places: Mapping[str, int]
    ) -> bool:
        """Whether a full pass leaves every run where the views have it (a routine
        pass: nothing new, gone, renamed or moved), so runs can be listed anew in
        place during it; only when someone wants that (``urgent``)."""
        state = self.runs
        if self._urgent is None or names != state.names or len(state.views) != len(runs):
            return False
        return len(places) == len(runs) and all(
            places.get(run.dir) == i for i, run in enumerate(runs)
        )

    def sync_while_listing(self) -> None:
        """Called now and then while a full pass lists its runs (see
        ``runrecord.listing_tick``): the runs that changed since the pass began, known
        and keeping their places, are synced and listed at once, as they are while the
        pass syncs, not after the whole listing (seconds at 100,000 runs)."""
        now = time.monotonic()
        if self._urgent is None or now < self._next_early:
            return
        self._next_early = now + URGENT_CHECK
        state = self.runs
        if not state.names or len(state.positions) != len(state.views):
            return  # no listing of a whole pass to keep places in
        try:
            self.config.acquire_logdir()
            self._early.update(self._sync_urgent(state.names, state.positions))
        except Exception:  # the pass goes on; the runs stay queued for the next one
            log.warning("Could not sync changed runs during the listing", exc_info=True)

    def _sync_urgent(self, names: Mapping[str, str], places: Mapping[str, int]) -> dict[str, Run]:
        """Sync the runs that changed since the pass began (``urgent()``) and keep their
        places, and list them at once (views replaced, ``publish()``); the others wait
        for the pass that follows. Returns the runs synced, by dir, as read."""
        assert self._urgent is not None
        state = self.runs
        synced: dict[str, Run] = {}
        images = self.report.images  # the pass counts each run once, as it meets it
        for run in self._urgent():
            if self._keeps_place(run, places):
                self._update(run, names[run.dir])
                synced[run.dir] = run
        self.report.images = images
        if synced:
            views = list(state.views)
            for run_dir in synced:
                views[places[run_dir]] = state.logs[run_dir].view(names[run_dir])
            state.views = tuple(views)
            self._publish_cb()
        return synced

    def _settings(self) -> IndexSettings:
        config = self.config
        return IndexSettings(
            config.max_images_per_run,
            config.max_revisions_per_image,
            config.max_image_bytes,
            config.revision_steps,
            config.log_images,
            config.log_hparams,
        )

    def _new_log(self, run: Run, name: str) -> IndexedRun:
        """A new run's log, made and synced (an index thread may call this: it
        touches nothing shared)."""
        log_dir = os.path.join(self.config.logdir, name)
        return make_run_log(run, log_dir, name, self._settings())

    def _take(self, made: IndexedRun, name: str) -> RunLog:
        """A new run's log made elsewhere, its writes and problems in the report."""
        for path in made.written:
            self.report.written.append((name, path))
        for path, message in made.problems:
            self.problem(name, path, message)
        return made.run_log

    def _made(
        self, new: list[Run], names: Mapping[str, str], stack: contextlib.ExitStack
    ) -> Iterator[IndexedRun]:
        """The logs of ``new`` runs, made in order: by index children when the monitor
        wants them (the first batch here while they start, if no run is listed yet),
        else by threads here; here too if a child cannot start or fails (it is ended
        first, and what it left half made is picked up as after a restart)."""
        pool = concurrent.futures.ThreadPoolExecutor(
            INDEX_THREADS, thread_name_prefix="guildimg-index"
        )
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)

        def here(runs: list[Run]) -> Iterator[IndexedRun]:
            return pool.map(lambda run: self._new_log(run, names[run.dir]), runs)

        head, tail = new, []
        if self.config.index_process:  # made here, a run holds the lock 2-4 ms:
            head = [] if self.runs.views else new[:FIRST_BATCH]  # only while none is listed
            tail = new[len(head) :]
        children: list[IndexChild] = []
        for _ in range(children_for(len(tail)) if tail else 0):
            started = IndexChild.start(self._settings())
            if started.child is None:
                if not children:  # with none at all, the threads here make them
                    self._index_failed(started.message)
                break
            children.append(started.child)
            stack.callback(started.child.close)
        if children:
            log.info(
                "Indexing %d runs in %d child process(es) (pid %s)",
                len(tail),
                len(children),
                ", ".join(str(child.pid) for child in children),
            )
        yield from here(head if children else new)
        if not children:
            return
        done = 0
        jobs = [
            (run, os.path.join(self.config.logdir, names[run.dir]), names[run.dir]) for run in tail
        ]
        try:
            for made in index_in_children(children, jobs):
                done += 1
                yield made
        except ChildProcessError as e:
            for child in children:  # the others' runs are made here too, in order
                child.close()
            self._index_failed(str(e))
            yield from here(tail[done:])

    def _index_failed(self, message: str) -> None:
        self.problem("", "", f"{message}; indexing in the server process instead")

    def _update(self, run: Run, name: str) -> None:
        """Bring one run listed by the pass up to date (made if new)."""
        report, logs, targets = self.report, self.runs.logs, self.config.targets
        self.runs.touch(run.dir)
        run_log = logs.get(run.dir)
        if run_log is None:
            run_log = logs[run.dir] = self._take(self._new_log(run, name), name)
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
        if self.config.freeze_after_index:
            gcfreeze.freeze()
        self._publish_cb()

    def _sync(self, run: Run, name: str, run_log: RunLog) -> bool:
        """Bring ``run_log`` up to date; whether it wrote something."""

        def problem(path: str, message: str) -> None:
            self.problem(name, path, message)

        config = self.config
        paths = sync_run(
            run_log, run, name, problem, images=config.log_images, hparams=config.log_hparams
        )
        for path in paths:
            self.report.written.append((name, path))
        return bool(paths)
