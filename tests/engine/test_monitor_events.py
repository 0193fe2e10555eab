"""The monitor driven by file-system events: targeted passes over the runs that
changed, their sources' ``read_run``, and the thread fed by a real RunsWatcher
(real files, real inotify) with full passes made rare."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from jupyter_guildimg.engine import fswatch as fswatch_module
from jupyter_guildimg.engine import logsync, runrecord, watchkeeper
from jupyter_guildimg.engine import targets as targets_module
from jupyter_guildimg.engine.fswatch import RunsWatcher
from jupyter_guildimg.engine.monitor import PassReport, RunsMonitor
from jupyter_guildimg.engine.runs import (
    CombinedSources,
    GuildHome,
    RunList,
    RunsDir,
    combine_sources,
)
from jupyter_guildimg.engine.targets import FIRST_BATCH
from jupyter_guildimg.guild.project import write_run

from helpers import png, python_with_inotify_limits, run_logdir, summaries, wait_for

# Bounded waits for events: generous, never asserted as times.
EVENT_WAIT = 20.0


def _stats(path: str) -> dict[str, tuple[int, int]]:
    """(mtime, size) of everything under ``path``, symlinks not followed."""
    found = {}
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(parent, name)
            st = os.lstat(full)
            found[os.path.relpath(full, path)] = (st.st_mtime_ns, st.st_size)
    return found


def _images(monitor: RunsMonitor, run_dir: str) -> set[str]:
    views = [v for v in monitor.views if v.run.dir == run_dir]
    return set(views[0].images) if views else set()


def _runs(home: GuildHome, n: int) -> list[str]:
    return [
        write_run(home.path, op="train", started=1_000 + i, files={"a.png": png()})
        for i in range(n)
    ]


class CountingSources(CombinedSources):
    """A combined callback that counts its full listings."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.listings = 0

    def __call__(self) -> RunList:
        self.listings += 1
        return super().__call__()


# -- targeted passes ------------------------------------------------------------


def test_a_targeted_pass_reads_only_the_runs_it_is_given(home, logdir):
    a, b, c = _runs(home, 3)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    others = {d: _stats(run_logdir(logdir, d)) for d in (b, c)}
    Path(a, "new.png").write_bytes(png(colour="blue"))
    Path(b, "unseen.png").write_bytes(png(colour="green"))

    report = monitor.run_pass(only={a})

    assert [path for _run, path in report.written] == ["new.png"]
    assert _images(monitor, a) == {"a.png", "new.png"}
    assert _images(monitor, b) == {"a.png"}  # not read: b was not in the pass
    assert {d: _stats(run_logdir(logdir, d)) for d in (b, c)} == others
    assert report.runs == 3 and len(monitor.views) == 3
    assert report.images == 4  # every run's, not just a's
    assert monitor.generation == 2
    assert monitor.known_runs()[a] == monitor.views[-1].run

    report = monitor.run_pass(only={b})
    assert report.written == [(os.path.basename(run_logdir(logdir, b)), "unseen.png")]
    assert report.images == 5 == monitor.run_pass().images


def test_a_targeted_pass_leaves_the_other_runs_and_still_renames_and_reorders(home, logdir):
    a, b, c = _runs(home, 3)  # started in that order: listed c, b, a
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    before = {view.run.dir: view for view in monitor.views}
    Path(a, "new.png").write_bytes(png(colour="blue"))

    report = monitor.run_pass(only={a})

    assert [view.run.dir for view in monitor.views] == [c, b, a]
    assert _images(monitor, a) == {"a.png", "new.png"} and report.images == 4
    # The others' snapshots are the very ones the last pass made: nothing redone.
    assert all(view is before[view.run.dir] for view in monitor.views[:2])

    # A new label is a new log dir name, the history moved along.
    Path(a, ".guild", "attrs", "label").write_text("relabelled\n")
    report = monitor.run_pass(only={a})
    assert os.path.basename(run_logdir(logdir, a)).endswith(" relabelled")
    assert report.runs_changed and _images(monitor, a) == {"a.png", "new.png"}
    # A new start time moves the run to its place in the newest-first order.
    Path(a, ".guild", "attrs", "started").write_text(f"{2_000 * 10**6}\n")
    monitor.run_pass(only={a})
    assert [view.run.dir for view in monitor.views] == [a, c, b]
    monitor.close()


def test_a_run_is_removed_by_a_targeted_pass_only_once_its_dir_is_gone(home, logdir):
    a, b = _runs(home, 2)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    shutil.rmtree(b)
    shutil.rmtree(os.path.join(a, ".guild"))  # no longer a run, but its dir is there

    report = monitor.run_pass(only={a})
    assert not report.runs_removed and len(monitor.views) == 2

    report = monitor.run_pass(only={b})
    assert len(report.runs_removed) == 1 and [v.run.dir for v in monitor.views] == [a]
    assert list(monitor.known_runs()) == [a] and report.images == 1

    report = monitor.run_pass()  # the full pass decides about a
    assert len(report.runs_removed) == 1 and monitor.views == ()
    assert monitor.known_runs() == {} and report.images == 0


def test_a_new_run_is_added_by_a_targeted_pass(home, logdir):
    (a,) = _runs(home, 1)
    monitor = RunsMonitor(logdir, home.list_runs)  # a source's own list_runs: targeted too
    monitor.run_pass()
    new = write_run(home.path, op="eval", files={"b.png": png()})

    report = monitor.run_pass(only={new})

    assert len(report.runs_added) == 1
    assert {v.run.dir for v in monitor.views} == {a, new}
    assert set(monitor.known_runs()) == {a, new}
    assert _images(monitor, new) == {"b.png"}


def test_a_targeted_pass_over_every_run_lists_them_newest_first(home, logdir):
    dirs = [write_run(home.path, op="a", started=1_000 + i) for i in range(5)]
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_pass()

    monitor.run_pass(only=set(dirs))  # every known run read again: none kept as it was

    assert [view.run.dir for view in monitor.views] == dirs[::-1]
    monitor.close()


def test_many_runs_new_to_a_targeted_pass_are_made_by_the_index_threads(home, logdir, monkeypatch):
    # The newest runs read before a first index, or many runs appearing at once:
    # their files are created by a few threads (the disk waits overlap), in order.
    made_in: list[str] = []
    real = logsync.make_run_log

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        made_in.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(logsync, "make_run_log", recording)
    (old,) = _runs(home, 1)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    new = [
        write_run(home.path, op="b", started=2_000 + i, files={"a.png": png()})
        for i in range(logsync.PARALLEL_NEW)
    ]
    made_in.clear()

    report = monitor.run_pass(only=set(new))

    assert len(made_in) == logsync.PARALLEL_NEW
    assert all(name.startswith("guildimg-index") for name in made_in)
    assert [view.run.dir for view in monitor.views] == [*new[::-1], old]
    assert all(_images(monitor, run_dir) == {"a.png"} for run_dir in new)
    assert len(report.runs_added) == logsync.PARALLEL_NEW
    assert report.images == logsync.PARALLEL_NEW + 1
    monitor.close()

    # In a server (index_process), the pass's own thread makes them: threads taking
    # the interpreter lock in turn slowed Jupyter's requests.
    server = RunsMonitor(logdir + "-server", combine_sources([home]), index_process=True)
    server.run_pass(only={old})
    made_in.clear()
    server.run_pass(only=set(new))
    assert made_in == [threading.current_thread().name] * logsync.PARALLEL_NEW
    assert [view.run.dir for view in server.views] == [*new[::-1], old]
    server.close()


def test_with_a_plain_callback_a_targeted_pass_is_a_full_one(home, logdir):
    a, b = _runs(home, 2)
    monitor = RunsMonitor(logdir, lambda: home.list_runs())
    monitor.run_pass()
    Path(a, "new.png").write_bytes(png(colour="blue"))
    Path(b, "new.png").write_bytes(png(colour="blue"))

    report = monitor.run_pass(only={a})

    assert len(report.written) == 2


def test_a_targeted_pass_reads_plain_runs_through_their_folder(tmp_path, logdir):
    folder = tmp_path / "lightning_logs"
    for name in ("version_0", "version_1"):
        (folder / name).mkdir(parents=True)
        (folder / name / "a.png").write_bytes(png())
    monitor = RunsMonitor(logdir, combine_sources([RunsDir(folder)]))
    monitor.run_pass()
    (folder / "version_0" / "b.png").write_bytes(png(colour="blue"))
    (folder / "version_1" / "b.png").write_bytes(png(colour="blue"))
    (folder / "version_2").mkdir()
    (folder / "version_2" / "a.png").write_bytes(png())

    report = monitor.run_pass(only={str(folder / "version_0"), str(folder / "version_2")})

    assert sorted(report.written) == [("version_0", "b.png"), ("version_2", "a.png")]
    assert report.runs_added == ["version_2"]


def test_changed_paths_map_to_their_runs(home, tmp_path, logdir):
    (a,) = _runs(home, 1)
    folder = tmp_path / "runs"
    (folder / "day" / "r1").mkdir(parents=True)
    (folder / "day" / "r1" / "x.txt").write_text("x")
    sources = combine_sources([home, RunsDir(folder)])
    monitor = RunsMonitor(logdir, sources)
    monitor.run_pass()
    new = os.path.join(home.runs_dir, "f" * 32)
    scheduler = monitor._scheduler

    found = scheduler.run_dirs_for(
        [
            os.path.join(a, "deep", "er", "img.png"),
            os.path.join(new, ".guild", "opref"),
            str(folder / "day" / "r1" / "sub" / "y.png"),
            str(folder / "day" / "r2" / "nothing-yet"),
            "/elsewhere/file",
        ]
    )

    assert found == {a, new, str(folder / "day" / "r1")}
    assert scheduler.run_dirs_for([home.runs_dir]) is None  # a root itself: a full pass
    assert scheduler.watch.roots() == [home.runs_dir, str(folder)]


def test_notified_changes_run_a_targeted_pass_in_the_thread(home, logdir):
    a, b = _runs(home, 2)
    sources = CountingSources([home])
    monitor = RunsMonitor(logdir, sources, interval=3600)
    monitor.start()
    try:
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        Path(a, "new.png").write_bytes(png(colour="blue"))
        Path(b, "unseen.png").write_bytes(png(colour="green"))

        monitor.notify_changed({os.path.join(a, "new.png")})

        wait_for(lambda: "new.png" in _images(monitor, a), EVENT_WAIT, "the targeted pass")
        assert sources.listings == 1
        assert _images(monitor, b) == {"a.png"}
        assert monitor.status()["watch"] is None
    finally:
        monitor.close()


# -- with a real watcher ----------------------------------------------------------


@pytest.fixture
def watched(home, logdir):
    """A started monitor over ``home`` fed by a real RunsWatcher, full passes rare."""
    sources = CountingSources([home])
    monitor: RunsMonitor | None = None
    watcher = RunsWatcher(lambda paths: monitor.notify_changed(paths) if monitor else None)
    monitor = RunsMonitor(logdir, sources, interval=3600, watcher=watcher, reconcile_interval=3600)
    yield monitor, sources
    monitor.close()
    watcher.close()


def test_an_image_written_into_an_active_run_is_captured_without_a_full_pass(home, watched):
    monitor, sources = watched
    a, _b = _runs(home, 2)  # just finished: active
    monitor.start()
    wait_for(lambda: monitor.status()["watch"]["watches"] > 0, EVENT_WAIT, "the watches")

    Path(a, "sub").mkdir()
    Path(a, "sub", "new.png").write_bytes(png(colour="blue"))

    wait_for(lambda: "sub/new.png" in _images(monitor, a), EVENT_WAIT, "the event")
    assert sources.listings == 1
    watch = monitor.status()["watch"]
    assert watch["sources"] == [{"path": home.runs_dir, "mode": "events", "reason": ""}]
    assert watch["reconcile_interval"] == 3600


def test_a_new_run_under_the_guild_home_appears_without_a_full_pass(home, watched):
    monitor, sources = watched
    _runs(home, 1)
    monitor.start()
    wait_for(lambda: monitor.status()["watch"]["watches"] > 0, EVENT_WAIT, "the watches")

    new = write_run(home.path, op="eval", files={"b.png": png()})

    wait_for(lambda: "b.png" in _images(monitor, new), EVENT_WAIT, "the new run")
    Path(new, "c.png").write_bytes(png(colour="blue"))  # and it is watched now
    wait_for(lambda: "c.png" in _images(monitor, new), EVENT_WAIT, "the new run's image")
    assert sources.listings == 1


def test_a_run_deleted_under_the_watcher_is_removed_without_a_full_pass(home, watched):
    monitor, sources = watched
    a, b = _runs(home, 2)
    monitor.start()
    wait_for(lambda: monitor.status()["watch"]["watches"] > 0, EVENT_WAIT, "the watches")

    shutil.rmtree(b)

    wait_for(lambda: [v.run.dir for v in monitor.views] == [a], EVENT_WAIT, "the removal")
    assert sources.listings == 1


def test_a_run_made_while_the_runs_dir_watch_is_added_is_listed_without_a_reconciling_pass(
    home, watched, monkeypatch
):
    # The run appears after the first pass listed the home and before the watch on
    # runs/ is in place, so no event tells of it: the watch, once in place, reports
    # its root as changed, and the pass that follows lists the run.
    monitor, sources = watched
    _runs(home, 1)  # runs/ holds a run: watched alone, not recursively
    monkeypatch.setattr(watchkeeper, "WATCH_READY_WAIT", 0.2)
    real_watch = fswatch_module.watchfiles.watch
    made: list[str] = []

    def watch_after_a_run_appears(*paths, **kwargs):  # type: ignore[no-untyped-def]
        if not kwargs["recursive"] and not made:
            wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
            made.append(write_run(home.path, op="train", files={"a.png": png()}))
        return real_watch(*paths, **kwargs)

    monkeypatch.setattr(fswatch_module.watchfiles, "watch", watch_after_a_run_appears)
    monitor.start()

    wait_for(lambda: made and "a.png" in _images(monitor, made[0]), EVENT_WAIT, "the run")
    assert sources.listings == 2  # the first pass, and the one the watch asked for
    Path(made[0], "b.png").write_bytes(png(colour="blue"))  # and the run is watched
    wait_for(lambda: "b.png" in _images(monitor, made[0]), EVENT_WAIT, "its new image")


def _watched_monitor(
    logdir: str, sources: CombinedSources, **kwargs: object
) -> tuple[RunsMonitor, RunsWatcher]:
    monitor: RunsMonitor | None = None
    force_polling = bool(kwargs.pop("force_polling", False))
    watcher = RunsWatcher(
        lambda paths: monitor.notify_changed(paths) if monitor else None,
        force_polling=force_polling,
    )
    monitor = RunsMonitor(logdir, sources, watcher=watcher, **kwargs)  # type: ignore[arg-type]
    return monitor, watcher


def test_only_running_and_recent_runs_are_active(home, logdir):
    old = write_run(home.path, op="train", started=1_000, stopped=2_000)
    recent = write_run(home.path, op="train", started=1_000)  # stopped now
    running = write_run(home.path, op="train", started=1_000, exit_status=None)
    os.makedirs(os.path.join(running, ".guild"), exist_ok=True)
    Path(running, ".guild", "LOCK").write_text(str(os.getpid()))
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    assert monitor.targets.active(monitor.known_runs()) == sorted([recent, running])

    Path(old, "new.png").write_bytes(png())
    monitor.run_pass(only={old})  # a change makes it active again
    assert old in monitor.targets.active(monitor.known_runs())


def test_a_polled_root_gets_a_full_pass_every_interval(home, logdir):
    (a,) = _runs(home, 1)
    sources = CountingSources([home])
    monitor, watcher = _watched_monitor(
        logdir, sources, interval=0.5, reconcile_interval=3600, force_polling=True
    )
    try:
        monitor.start()
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        Path(a, "new.png").write_bytes(png(colour="blue"))
        wait_for(lambda: "new.png" in _images(monitor, a), EVENT_WAIT, "a polling pass")
        assert sources.listings >= 2
        assert monitor.status()["watch"]["sources"] == [
            {"path": home.runs_dir, "mode": "polling", "reason": "polling forced by the setting"}
        ]
    finally:
        monitor.close()
        watcher.close()


def test_a_quiet_run_is_caught_up_by_the_reconciling_pass(home, logdir):
    old = write_run(home.path, op="train", started=1_000, stopped=2_000, files={"a.png": png()})
    sources = CountingSources([home])
    monitor, watcher = _watched_monitor(logdir, sources, interval=3600, reconcile_interval=1.0)
    try:
        monitor.start()
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        Path(old, "new.png").write_bytes(png(colour="blue"))
        wait_for(lambda: "new.png" in _images(monitor, old), EVENT_WAIT, "a reconciling pass")
        assert sources.listings >= 2
    finally:
        monitor.close()
        watcher.close()


# -- progressive first index ----------------------------------------------------


def _first_publish(monitor: RunsMonitor) -> tuple[threading.Event, threading.Event, list]:
    """A pass listener that holds the pass at its first call (the first batch) until
    ``release`` is set; ``held`` is set then, with the views and status seen there."""
    held, release = threading.Event(), threading.Event()
    seen: list = []

    def listener(report: PassReport) -> None:
        if not held.is_set():
            seen.append((monitor.views, monitor.status(), report.runs_added[:]))
            held.set()
            release.wait(EVENT_WAIT)

    monitor.add_listener(listener)
    return held, release, seen


def test_a_first_pass_over_many_runs_lists_the_newest_first_in_batches(home, logdir):
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(600)]
    monitor = RunsMonitor(logdir, combine_sources([home]))
    held, release, seen = _first_publish(monitor)
    thread = threading.Thread(target=monitor.run_pass)
    thread.start()
    try:
        assert held.wait(EVENT_WAIT), "no batch was published"
        views, status, added = seen[0]
        newest = runs[::-1]
        assert 0 < len(views) < len(runs)
        assert [view.run.dir for view in views] == newest[: len(views)]
        assert len(added) == len(views) and monitor.generation >= 1
        assert status["index"] == {"indexed": len(views), "found": len(runs), "done": False}
        assert status["passes"] == 0
    finally:
        release.set()
        thread.join(EVENT_WAIT)
    assert [view.run.dir for view in monitor.views] == newest
    assert monitor.status()["index"] == {"indexed": 600, "found": 600, "done": True}
    assert monitor.passes == 1


def test_a_first_index_made_by_several_threads_captures_every_run_in_order(home, logdir):
    runs = [
        write_run(
            home.path,
            op="train",
            started=1_000 + i,
            files={"a.png": png(), "s/b.png": png(colour="blue")},
        )
        for i in range(150)
    ]
    broken_file = Path(runs[70], "broken.png")
    broken_file.write_bytes(b"not an image")
    os.utime(broken_file, (time.time() - 3600,) * 2)  # not one being written
    monitor = RunsMonitor(logdir, combine_sources([home]))

    report = monitor.run_pass()

    newest = runs[::-1]
    assert [view.run.dir for view in monitor.views] == newest
    assert report.runs_added == [os.path.basename(run_logdir(logdir, d)) for d in newest]
    assert report.images == 300 and len(report.written) == 300
    assert all(set(view.images) == {"a.png", "s/b.png"} for view in monitor.views)
    assert all(len(summaries(logdir, d)) == 2 for d in runs)
    (broken,) = [p for p in report.problems if p.path == "broken.png"]
    assert broken.run == os.path.basename(run_logdir(logdir, runs[70]))
    assert monitor.run_pass().written == []  # nothing left to do
    monitor.close()


def test_a_full_pass_meeting_many_new_runs_keeps_the_known_ones_listed(home, logdir):
    old = [write_run(home.path, op="train", started=1_000 + i) for i in range(20)]
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()  # 20 runs: not in batches, the index is done
    assert monitor.status()["index"] == {"indexed": 20, "found": 20, "done": True}
    new = [write_run(home.path, op="eval", started=5_000 + i) for i in range(300)]
    held, release, seen = _first_publish(monitor)
    thread = threading.Thread(target=monitor.run_pass)
    thread.start()
    try:
        assert held.wait(EVENT_WAIT), "no batch was published"
        views, status, _added = seen[0]
        listed = {view.run.dir for view in views}
        assert set(old) <= listed  # never shown as removed
        assert 0 < len(listed & set(new)) < len(new)
        assert not status["index"]["done"] and status["index"]["found"] == 320
    finally:
        release.set()
        thread.join(EVENT_WAIT)
    assert len(monitor.views) == 320 and monitor.status()["index"]["done"]


def test_few_new_runs_are_published_once_at_the_end_of_the_pass(home, logdir):
    _runs(home, 3)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    calls: list[int] = []
    monitor.add_listener(lambda report: calls.append(len(monitor.views)))
    monitor.run_pass()
    assert calls == [3]


def test_before_its_first_pass_a_started_monitor_is_indexing(home, logdir):
    _runs(home, 1)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    assert monitor.status()["index"]["done"]  # no thread: no pass is coming
    monitor.start()
    try:
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        assert monitor.status()["index"] == {"indexed": 1, "found": 1, "done": True}
    finally:
        monitor.close()


class GatedSources(CombinedSources):
    """Our own test source: a combined callback whose full listing waits for
    ``gate`` (a slow disk, reading every run of a large home)."""

    def __init__(self, sources: list[GuildHome]) -> None:
        super().__init__(sources)
        self.gate = threading.Event()

    def __call__(self) -> RunList:
        self.gate.wait(EVENT_WAIT)
        return super().__call__()


def test_a_large_home_lists_its_newest_runs_before_its_full_listing(home, logdir):
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(FIRST_BATCH + 20)]
    sources = GatedSources([home])
    monitor = RunsMonitor(logdir, sources)
    monitor.start()
    try:
        wait_for(lambda: monitor.views, EVENT_WAIT, "the newest runs")
        assert [view.run.dir for view in monitor.views] == runs[::-1][:FIRST_BATCH]
        assert not monitor.status()["index"]["done"]
        sources.gate.set()
        wait_for(lambda: monitor.status()["index"]["done"], EVENT_WAIT, "the first index")
        assert [view.run.dir for view in monitor.views] == runs[::-1]
    finally:
        sources.gate.set()
        monitor.close()


def test_a_small_home_is_listed_by_the_full_pass_alone(home, logdir):
    _runs(home, 3)
    sources = GatedSources([home])
    sources.gate.set()
    monitor = RunsMonitor(logdir, sources)
    monitor.start()
    try:
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        assert monitor.passes == 1 and len(monitor.views) == 3
        assert monitor.status()["index"] == {"indexed": 3, "found": 3, "done": True}
    finally:
        monitor.close()


# -- adaptive polling -----------------------------------------------------------


class SlowSources(CombinedSources):
    """Our own test source: a combined callback whose listing takes ``delay`` s."""

    def __init__(self, sources: list[RunsDir], delay: float) -> None:
        super().__init__(sources)
        self.delay = delay

    def __call__(self) -> RunList:
        time.sleep(self.delay)
        return super().__call__()


def test_polling_waits_longer_after_a_costly_pass(tmp_path, logdir):
    folder = tmp_path / "runs"
    (folder / "r1").mkdir(parents=True)
    (folder / "r1" / "a.png").write_bytes(png())
    monitor = RunsMonitor(logdir, SlowSources([RunsDir(folder)], 0.2), interval=0.5)
    assert monitor.status()["poll_interval"] == 0.5  # no pass yet: the interval
    monitor.start()
    try:
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        wait_for(lambda: monitor._scheduler.poll_cost > 0, EVENT_WAIT, "the pass's cost")
        duration = monitor._scheduler.poll_cost
        assert duration >= 0.2
        # At most a tenth of a core: 10 × the pass's duration between passes.
        assert monitor._scheduler.full_interval() == pytest.approx(duration / 0.1)
        assert monitor.status()["poll_interval"] == round(duration / 0.1, 3)
    finally:
        monitor.close()

    shared = RunsMonitor(logdir, SlowSources([RunsDir(folder)], 0.0), max_poll_share=1.0)
    shared._scheduler.poll_cost = 0.2
    assert shared._scheduler.full_interval() == shared.interval  # the interval is longer
    with pytest.raises(ValueError, match="max_poll_share"):
        RunsMonitor(logdir, lambda: [], max_poll_share=0)


def test_reconciling_passes_wait_longer_after_a_costly_pass(home, logdir):
    monitor = RunsMonitor(logdir, combine_sources([home]), reconcile_interval=60)
    scheduler = monitor._scheduler
    scheduler.poll_cost = 0.2  # a full pass that took 0.2 s: a minute apart is 0.3 %
    assert scheduler.reconciling_interval() == 60
    scheduler.poll_cost = 3.0  # at most 1 % of a core: 300 s apart
    assert scheduler.reconciling_interval() == pytest.approx(300)
    shared = RunsMonitor(
        logdir, combine_sources([home]), reconcile_interval=60, max_reconcile_share=0.5
    )
    shared._scheduler.poll_cost = 3.0
    assert shared._scheduler.reconciling_interval() == 60
    with pytest.raises(ValueError, match="max_reconcile_share"):
        RunsMonitor(logdir, lambda: [], max_reconcile_share=0)


def test_events_make_no_poll_interval(home, watched):
    monitor, _sources = watched
    _runs(home, 1)  # its runs dir exists: watched
    monitor.start()
    wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
    assert monitor.status()["poll_interval"] is None
    assert monitor._scheduler.full_interval() == 3600


def test_a_first_pass_whose_listing_fails_ends_the_indexing(home, logdir):
    def failing() -> list:
        raise OSError("no listing")

    monitor = RunsMonitor(logdir, failing, interval=3600)
    monitor.start()
    try:
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        assert monitor.status()["index"] == {"indexed": 0, "found": 0, "done": True}
    finally:
        monitor.close()


def test_an_indexing_pass_that_goes_on_syncing_is_not_stalled(home, logdir):
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(300)]
    monitor = RunsMonitor(logdir, combine_sources([home]), stall_after=2.0)
    held, release, _seen = _first_publish(monitor)
    thread = threading.Thread(target=monitor.run_pass)
    thread.start()
    try:
        assert held.wait(EVENT_WAIT), "no batch was published"
        # Held after syncing its first batch: no run synced since, so it is stalled.
        wait_for(lambda: monitor.status()["stalled"], EVENT_WAIT, "the stall")
        monitor.index.progressed = time.monotonic()  # as if it had synced one more run
        assert not monitor.status()["stalled"]
    finally:
        release.set()
        thread.join(EVENT_WAIT)
    assert len(monitor.views) == len(runs)


# -- runs that change during a full pass ------------------------------------------


def _urgent_once(run_dirs: set[str]):
    """An ``urgent`` callback that reports ``run_dirs`` on its first call only."""
    calls: list[set[str]] = []

    def urgent() -> set[str]:
        calls.append(set() if calls else set(run_dirs))
        return calls[-1]

    return urgent, calls


def _listed_during_pass(monitor: RunsMonitor, run_dir: str) -> list[set[str]]:
    """What a pass listener sees of ``run_dir``'s images while a pass is running."""
    seen: list[set[str]] = []
    passes = monitor.passes
    monitor.add_listener(
        lambda _report: seen.append(_images(monitor, run_dir)) if monitor.passes == passes else None
    )
    return seen


def test_a_run_changed_during_a_routine_full_pass_is_listed_before_it_ends(
    home, logdir, monkeypatch
):
    monkeypatch.setattr("jupyter_guildimg.engine.logsync.URGENT_CHECK", 0.0)  # look at once
    runs = _runs(home, 12)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    changed = runs[3]  # late in the newest-first order the pass follows
    Path(changed, "new.png").write_bytes(png(colour="blue"))
    urgent, calls = _urgent_once({changed})
    seen = _listed_during_pass(monitor, changed)
    generation = monitor.generation

    report = monitor.run_pass(urgent=urgent)

    assert seen == [{"a.png", "new.png"}], "listed while the pass was still running"
    assert len(calls) > 1 and monitor.generation == generation + 2  # then the pass's own
    assert [path for _run, path in report.written] == ["new.png"]  # written once
    assert report.images == 13  # counted once too
    assert [view.run.dir for view in monitor.views] == runs[::-1]
    assert monitor.run_pass(only={changed}).written == []
    monitor.close()


class _ReadRecordingHome(GuildHome):
    """A Guild home that records, at each run its listing reads, ``seen()``."""

    def __init__(self, path: str, seen) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path)
        self.seen = seen
        self.at_reads: list[int] = []

    def _read_entry(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.at_reads.append(len(self.seen))
        return super()._read_entry(*args, **kwargs)


def test_a_run_changed_while_a_full_pass_lists_the_home_is_listed_before_the_listing_ends(
    home, logdir, monkeypatch
):
    # At 100,000 runs a reconciling pass lists the home for seconds: a run that
    # changes meanwhile is synced and listed then, not once the listing is done.
    monkeypatch.setattr("jupyter_guildimg.engine.logsync.URGENT_CHECK", 0.0)
    monkeypatch.setattr(runrecord, "LISTING_TICK_EVERY", 1)
    runs = _runs(home, 6)
    seen: list[set[str]] = []
    source = _ReadRecordingHome(home.path, seen)
    monitor = RunsMonitor(logdir, combine_sources([source]))
    monitor.run_pass()
    changed = runs[2]
    Path(changed, "new.png").write_bytes(png(colour="blue"))
    urgent, _calls = _urgent_once({changed})
    monitor.add_listener(lambda _report: seen.append(_images(monitor, changed)))
    source.at_reads.clear()

    report = monitor.run_pass(urgent=urgent)

    assert seen[0] == {"a.png", "new.png"}, "listed while the pass was still running"
    assert source.at_reads[0] == 0 and source.at_reads[-1] >= 1, "before the listing ended"
    assert [path for _run, path in report.written] == ["new.png"]  # written once
    assert report.images == 7
    assert [view.run.dir for view in monitor.views] == runs[::-1]
    monitor.close()


def test_a_plain_run_changed_while_a_full_pass_lists_its_folder_is_listed_meanwhile(
    tmp_path, logdir, monkeypatch
):
    monkeypatch.setattr("jupyter_guildimg.engine.logsync.URGENT_CHECK", 0.0)
    monkeypatch.setattr(runrecord, "LISTING_TICK_EVERY", 1)
    folder = tmp_path / "runs"
    for i in range(4):
        (folder / f"v{i}").mkdir(parents=True)
        (folder / f"v{i}" / "a.png").write_bytes(png())
        for path in (folder / f"v{i}" / "a.png", folder / f"v{i}"):
            os.utime(path, (1_000 + i, 1_000 + i))  # a plain run starts at its oldest mtime
    seen: list[set[str]] = []
    reads: list[int] = []

    class Recording(RunsDir):
        def _read_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            reads.append(len(seen))
            return super()._read_run(*args, **kwargs)

    monitor = RunsMonitor(logdir, combine_sources([Recording(folder)]))
    monitor.run_pass()
    changed = str(folder / "v1")
    Path(changed, "new.png").write_bytes(png(colour="blue"))
    # Its oldest mtime, a.png's, still its start: it keeps its place.
    urgent, _calls = _urgent_once({changed})
    monitor.add_listener(lambda _report: seen.append(_images(monitor, changed)))
    reads.clear()

    report = monitor.run_pass(urgent=urgent)

    assert seen[0] == {"a.png", "new.png"} and reads[-1] >= 1, "listed during the listing"
    assert [path for _run, path in report.written] == ["new.png"]
    monitor.close()


def test_a_run_that_moves_during_a_full_pass_waits_for_the_pass_after(home, logdir, monkeypatch):
    monkeypatch.setattr("jupyter_guildimg.engine.logsync.URGENT_CHECK", 0.0)
    runs = _runs(home, 4)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    moved = runs[0]
    told: list[int] = []

    def urgent() -> set[str]:
        # Restarted while the pass runs, after its listing: the newest run now.
        if told:
            return set()
        told.append(1)
        Path(moved, ".guild", "attrs", "started").write_text(f"{5_000 * 10**6}\n")
        return {moved}

    seen = _listed_during_pass(monitor, moved)

    monitor.run_pass(urgent=urgent)

    assert told and seen == []  # its place changed: not listed in the middle of the pass
    assert [view.run.dir for view in monitor.views] == runs[::-1]  # the pass's own listing
    monitor.run_pass(only={moved})  # what the scheduler runs next, the paths still queued
    assert [view.run.dir for view in monitor.views] == runs[:1] + runs[:0:-1]
    monitor.close()


def test_a_full_pass_is_told_of_each_change_once_and_the_change_stays_queued(home, logdir):
    a, b = _runs(home, 2)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    scheduler = monitor._scheduler  # what a full pass in the thread asks
    monitor.notify_changed([os.path.join(a, "x.png")])
    assert scheduler.take_urgent() == {a}
    assert scheduler.take_urgent() == set()  # told once
    monitor.notify_changed([os.path.join(b, "y.png"), os.path.join(a, "x.png")])
    assert scheduler.take_urgent() == {b}
    # Still queued for the targeted pass that follows (it settles them too).
    assert scheduler.run_dirs_for(scheduler._queued) == {a, b}
    monitor.close()


# -- a watch that fails once the monitor runs ---------------------------------------

OUT_OF_INSTANCES = """
import json, sys, time
from pathlib import Path
from jupyter_guildimg.engine.fswatch import RunsWatcher
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources

home, logdir, run_dir = sys.argv[1:4]
monitor = None
watcher = RunsWatcher(lambda paths: monitor.notify_changed(paths) if monitor else None)
monitor = RunsMonitor(
    logdir, combine_sources([GuildHome(home)]), interval=0.5, watcher=watcher,
    reconcile_interval=3600,
)
monitor.start()

def images():
    return sorted(i for v in monitor.views if v.run.dir == run_dir for i in v.images)

def wait(condition):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)

wait(lambda: images() and monitor.status()["watch"]["sources"][0]["mode"] == "polling")
out = {"sources": monitor.status()["watch"]["sources"], "before": images()}
Path(run_dir, "new.png").write_bytes(Path(run_dir, "a.png").read_bytes())
wait(lambda: "new.png" in images())
out["after"] = images()
monitor.close()
watcher.close()
print(json.dumps(out))
"""


def test_a_watch_that_cannot_start_turns_its_runs_to_polling_at_once(home, logdir):
    # One inotify instance: the runs/ dir's watch takes it, the active run's cannot
    # start. Its run is polled from then on, not left to the reconciling pass (an
    # hour here): the image it writes next is captured.
    (run_dir,) = _runs(home, 1)
    child = python_with_inotify_limits(OUT_OF_INSTANCES, home.path, logdir, run_dir, instances=1)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["sources"] == [
        {
            "path": home.runs_dir,
            "mode": "polling",
            "reason": "no inotify instance to spare (max_user_instances=1, or too many open files)",
        }
    ]
    assert out["before"] == ["a.png"]
    assert out["after"] == ["a.png", "new.png"]


class RecordingWatcher(RunsWatcher):
    """A real watcher that keeps the active runs of every ``watch()`` call."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []

    def watch(self, roots, active_runs) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(sorted(active_runs))
        super().watch(roots, active_runs)


def test_runs_that_go_quiet_leave_the_watch_only_every_prune_interval(home, logdir, monkeypatch):
    # Every change of the watched set re-adds every watch: a run that becomes active
    # joins at once, runs that went quiet leave at most every PRUNE_SECONDS.
    monkeypatch.setattr(targets_module, "RECENT", 1.5)
    monkeypatch.setattr(watchkeeper, "PRUNE_SECONDS", 3600.0)
    a, b = (
        write_run(home.path, op="train", started=1_000, stopped=2_000, files={"a.png": png()})
        for _ in range(2)
    )
    monitor: RunsMonitor | None = None
    watcher = RecordingWatcher(lambda paths: monitor.notify_changed(paths) if monitor else None)
    monitor = RunsMonitor(
        logdir, combine_sources([home]), interval=3600, watcher=watcher, reconcile_interval=3600
    )
    try:
        monitor.start()
        wait_for(lambda: monitor.passes >= 1, EVENT_WAIT, "the first pass")
        assert watcher.calls == [[]]  # both ended long ago: only runs/ is watched

        monitor.notify_changed({os.path.join(a, "a.png")})  # a changes: active at once
        wait_for(lambda: watcher.calls[-1] == [a], EVENT_WAIT, "a watched")
        time.sleep(2.0)  # a has gone quiet
        monitor.notify_changed({os.path.join(b, "a.png")})  # b too: a stays, b joins
        wait_for(lambda: watcher.calls[-1] == sorted([a, b]), EVENT_WAIT, "b watched")

        monkeypatch.setattr(watchkeeper, "PRUNE_SECONDS", 0.0)
        time.sleep(2.0)  # both quiet
        passes = monitor.passes
        monitor.notify_changed({os.path.join(home.runs_dir, "nothing-here")})
        wait_for(lambda: monitor.passes > passes, EVENT_WAIT, "a pass")
        wait_for(lambda: watcher.calls[-1] == [], EVENT_WAIT, "the quiet runs dropped")
    finally:
        monitor.close()
        watcher.close()
