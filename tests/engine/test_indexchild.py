"""The first index made in a child process (``index_process=True``): the same log
dir as the monitor makes itself, every problem reported, nothing lost when the
child fails, no secret handed to it, and no child left behind."""

from __future__ import annotations

import concurrent.futures
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jupyter_guildimg.engine import indexchild, logsync
from jupyter_guildimg.engine.monitor import PassReport, RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources, read_guild_run
from jupyter_guildimg.engine.targets import FIRST_BATCH
from jupyter_guildimg.engine.tfevent import read_events
from jupyter_guildimg.guild.project import write_run

from helpers import png, process_running, run_logdir, wait_for

WAIT = 60.0
# More than one batch: the first FIRST_BATCH runs are made in the monitor's own
# threads while the child starts, the rest (the oldest) by the child. Enough for the
# child to fill its pipe and wait, alive, while a test holds the monitor's pass.
RUNS = FIRST_BATCH + 60


def _runs(home: GuildHome) -> list[str]:
    runs = [
        write_run(
            home.path,
            op="train",
            started=1_000 + i,
            files={"a.png": png(), "s/b.png": png(colour="blue")},
        )
        for i in range(RUNS)
    ]
    for run in runs:  # not runs being written: nothing waits for a racy window
        for image in ("a.png", "s/b.png"):
            os.utime(Path(run, image), (time.time() - 3600,) * 2)
    return runs


def _children() -> set[int]:
    """This process's live child processes running the index child."""
    found = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            text = Path(f"/proc/{os.getpid()}/task/{task}/children").read_text()
        except FileNotFoundError:
            continue
        for pid in map(int, text.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"indexchild" in cmdline:
                found.add(pid)
    return found


def _event_files(logdir: str, run_dir: str) -> dict[str, list[tuple]]:
    """Each summary file's image events (tag, step, wall time, the image's bytes):
    what TensorBoard reads. The file's version record is dated when it was written."""
    images = Path(run_logdir(logdir, run_dir), ".images")
    return {
        p.name: [
            (v.tag, e.step, e.wall_time, v.image.encoded_image_string)
            for e in read_events(str(p))
            for v in e.summary.value
        ]
        for p in sorted(images.iterdir())
    }


def _hold_first_batch(monitor: RunsMonitor) -> tuple[threading.Event, threading.Event]:
    """Hold the pass at its first published batch (the child is running by then)
    until ``release`` is set; ``held`` is set once there."""
    held, release = threading.Event(), threading.Event()

    def listener(_report: PassReport) -> None:
        if not held.is_set():
            held.set()
            release.wait(WAIT)

    monitor.add_listener(listener)
    return held, release


def test_a_child_makes_the_same_log_dir_the_monitor_makes_itself(home, tmp_path):
    runs = _runs(home)
    broken = Path(runs[10], "broken.png")  # an old run: made by the child
    broken.write_bytes(b"not an image")
    os.utime(broken, (time.time() - 3600,) * 2)
    here, child = str(tmp_path / "here"), str(tmp_path / "child")
    by_threads = RunsMonitor(here, combine_sources([home]), revision_steps=True)
    by_child = RunsMonitor(
        child, combine_sources([GuildHome(home.path)]), revision_steps=True, index_process=True
    )
    held, release = _hold_first_batch(by_child)
    pass_in_thread = threading.Thread(target=by_child.run_pass)
    pass_in_thread.start()
    try:
        assert held.wait(WAIT), "no batch was published"
        (pid,) = wait_for(_children, WAIT, "the index child")
        assert pid != os.getpid()
    finally:
        release.set()
        pass_in_thread.join(WAIT)
    expected = by_threads.run_pass()
    report = by_child.last_report
    assert report is not None

    assert [v.run.dir for v in by_child.views] == [v.run.dir for v in by_threads.views]
    assert [(v.name, dict(v.images)) for v in by_child.views] == [
        (v.name, dict(v.images)) for v in by_threads.views
    ]
    assert sorted(report.written) == sorted(expected.written)
    assert report.runs_added == expected.runs_added and report.images == 2 * RUNS
    for run in runs:
        assert _event_files(child, run) == _event_files(here, run)
    (problem,) = [p for p in report.problems if p.path == "broken.png"]
    assert problem.run == os.path.basename(run_logdir(child, runs[10]))
    assert len(report.problems) == len(expected.problems) == 1
    assert not process_running(pid), "the child outlived its index"
    assert by_child.run_pass().written == []  # its runs are the monitor's now
    by_threads.close()
    by_child.close()


def test_a_child_killed_mid_index_loses_nothing(home, logdir):
    runs = _runs(home)
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    held, release = _hold_first_batch(monitor)
    pass_in_thread = threading.Thread(target=monitor.run_pass)
    pass_in_thread.start()
    try:
        assert held.wait(WAIT), "no batch was published"
        (pid,) = wait_for(_children, WAIT, "the index child")
        os.kill(pid, signal.SIGKILL)
    finally:
        release.set()
        pass_in_thread.join(WAIT)

    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert all(set(v.images) == {"a.png", "s/b.png"} for v in monitor.views)
    (problem,) = monitor.problems
    assert problem.message.startswith("the index child process was killed by SIGKILL")
    assert problem.message.endswith("indexing in the server process instead")
    # What the child left half made was taken up, not written twice.
    assert all(len(_event_files(logdir, run)) == 2 for run in runs)
    assert monitor.run_pass().written == []
    monitor.close()


def test_a_child_that_cannot_start_leaves_the_index_to_the_monitor(home, logdir, monkeypatch):
    runs = _runs(home)
    monkeypatch.setattr(sys, "executable", str(Path(logdir).parent / "no-python-here"))
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)

    report = monitor.run_pass()

    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert len(report.written) == 2 * RUNS
    (problem,) = report.problems
    assert "no-python-here" in problem.message
    assert problem.message.endswith("indexing in the server process instead")
    monitor.close()


def test_the_child_gets_no_secret_of_the_server(home, logdir, monkeypatch):
    _runs(home)
    monkeypatch.setenv("JUPYTER_TOKEN", "token-of-the-server")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "key-of-the-server")
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    held, release = _hold_first_batch(monitor)
    pass_in_thread = threading.Thread(target=monitor.run_pass)
    pass_in_thread.start()
    try:
        assert held.wait(WAIT), "no batch was published"
        (pid,) = wait_for(_children, WAIT, "the index child")
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    finally:
        release.set()
        pass_in_thread.join(WAIT)
    assert b"of-the-server" not in environ and b"PATH=" in environ
    niceness = int(stat.rsplit(")", 1)[1].split()[16])
    assert niceness > os.nice(0), "the child should yield the CPU to the server"
    monitor.close()


def test_closing_the_monitor_mid_index_ends_the_child(home, logdir):
    _runs(home)
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    held, release = _hold_first_batch(monitor)
    failures: list[BaseException] = []

    def run_pass() -> None:
        try:
            monitor.run_pass()
        except RuntimeError as e:
            failures.append(e)

    pass_in_thread = threading.Thread(target=run_pass)
    pass_in_thread.start()
    try:
        assert held.wait(WAIT), "no batch was published"
        (pid,) = wait_for(_children, WAIT, "the index child")
        published = monitor.views
        monitor.close(timeout=0)
    finally:
        release.set()
        pass_in_thread.join(WAIT)
    assert [str(e) for e in failures] == ["the monitor was closed during its index"]
    assert not process_running(pid), "the child outlived its closed monitor"
    assert monitor.views == published and 0 < len(published) < RUNS


def _index_by_two_children(
    home: GuildHome, logdir: str, monkeypatch, kill_one: bool = False
) -> tuple[RunsMonitor, list[int]]:
    """A first index whose child runs (RUNS - FIRST_BATCH) are dealt to two children
    on any machine; with ``kill_one``, the first child is killed mid-index. Returns
    the monitor and the children's pids, the killed one first."""
    monkeypatch.setattr(indexchild, "RUNS_PER_CHILD", (RUNS - FIRST_BATCH) // 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    held, release = _hold_first_batch(monitor)
    pass_in_thread = threading.Thread(target=monitor.run_pass)
    pass_in_thread.start()
    try:
        assert held.wait(WAIT), "no batch was published"
        pids = wait_for(lambda: len(found := _children()) == 2 and found, WAIT, "two children")
        if kill_one:
            os.kill(min(pids), signal.SIGKILL)
    finally:
        release.set()
        pass_in_thread.join(WAIT)
    return monitor, sorted(pids)


def test_a_large_index_is_dealt_to_two_children_and_listed_in_order(home, logdir, monkeypatch):
    runs = _runs(home)
    monitor, pids = _index_by_two_children(home, logdir, monkeypatch)
    report = monitor.last_report
    assert report is not None and report.problems == []
    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert report.runs_added == [v.name for v in monitor.views]
    assert all(set(v.images) == {"a.png", "s/b.png"} for v in monitor.views)
    assert all(len(_event_files(logdir, run)) == 2 for run in runs)
    assert not any(process_running(pid) for pid in pids), "a child outlived its index"
    monitor.close()


def test_one_of_two_children_killed_loses_nothing(home, logdir, monkeypatch):
    runs = _runs(home)
    monitor, (_killed, other) = _index_by_two_children(home, logdir, monkeypatch, kill_one=True)
    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert all(set(v.images) == {"a.png", "s/b.png"} for v in monitor.views)
    (problem,) = monitor.problems
    assert problem.message.startswith("the index child process was killed by SIGKILL")
    assert all(len(_event_files(logdir, run)) == 2 for run in runs)
    assert not process_running(other), "the other child was left running"
    assert monitor.run_pass().written == []
    monitor.close()


def test_few_new_runs_are_never_sent_to_a_child(home, logdir):
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(5)]
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    seen: list[set[int]] = []
    monitor.add_listener(lambda _report: seen.append(_children()))
    monitor.run_pass()
    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert seen == [set()]
    monitor.close()


def test_once_runs_are_listed_every_new_run_of_an_index_is_made_by_the_children(
    home, logdir, monkeypatch
):
    # Made in the server, each run holds the interpreter lock 2-4 ms while Jupyter's
    # requests wait; the first batch is made there only while nothing is listed yet.
    runs = _runs(home)
    aside = Path(home.path, "aside")
    aside.mkdir()
    for run in runs[3:]:  # three runs for the first pass, the others new to the next
        os.rename(run, aside / os.path.basename(run))
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    monitor.run_pass()
    assert [v.run.dir for v in monitor.views] == runs[2::-1]
    for run in runs[3:]:
        os.rename(aside / os.path.basename(run), run)
    made_here: list[str] = []
    make = logsync.make_run_log
    monkeypatch.setattr(
        logsync, "make_run_log", lambda run, *a: (made_here.append(run.dir), make(run, *a))[1]
    )
    children: list[set[int]] = []
    monitor.add_listener(lambda _report: children.append(_children()))
    report = monitor.run_pass()
    assert made_here == []
    assert any(children), "no child made the new runs"
    assert len(report.runs_added) == RUNS - 3 > FIRST_BATCH
    assert [v.run.dir for v in monitor.views] == runs[::-1]
    assert all(set(v.images) == {"a.png", "s/b.png"} for v in monitor.views)
    monitor.close()


def _indexed(run_dir: str, log_dir: str) -> indexchild.IndexedRun:
    run = read_guild_run(run_dir)
    assert run is not None
    settings = indexchild.IndexSettings(None, None, None, False, True, True)
    return indexchild.make_run_log(run, log_dir, "run", settings)


def test_a_childs_results_go_out_in_batches_never_held_long_by_a_slow_run(home, tmp_path):
    # Results go to the monitor in batches (one wake of its thread each), but one
    # run slow to make does not hold back those made before it.
    made = [_indexed(run, str(tmp_path / str(i))) for i, run in enumerate(_runs(home)[:3])]
    out = io.BytesIO()
    batch = indexchild._Batch(out)
    batch.add(made[0])
    assert out.getvalue() == b""  # waits for more
    slow: concurrent.futures.Future[indexchild.IndexedRun] = concurrent.futures.Future()
    sent_before: list[int] = []

    def finish_slowly() -> None:
        sent_before.append(len(out.getvalue()))
        slow.set_result(made[1])

    timer = threading.Timer(indexchild.BATCH_SECONDS * 10, finish_slowly)
    timer.start()
    assert batch.wait_for(slow) is made[1]
    timer.join()
    assert sent_before[0] > 0, "the result made first waited for the slow run"
    batch.add(made[1])
    batch.add(made[2])
    batch.send()
    stream = io.BytesIO(out.getvalue())
    loaded = [indexchild._ResultUnpickler(stream, result.run_log.run).load() for result in made]
    assert [r.run_log.run for r in loaded] == [r.run_log.run for r in made]
    assert [r.written for r in loaded] == [r.written for r in made]
    assert stream.read() == b""


_FREEZE_EVERY = 16
_FREEZE_SCRIPT = f"""
import gc, sys
from jupyter_guildimg.engine import gcfreeze
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources, read_guild_run

gcfreeze.FREEZE_EVERY = {_FREEZE_EVERY}
freezes = []
freeze = gc.freeze
gc.freeze = lambda: (freezes.append(1), freeze())

monitor = RunsMonitor(sys.argv[2], combine_sources([GuildHome(sys.argv[1])]),
                      freeze_after_index=True)
at_publish = []
monitor.add_listener(lambda report: at_publish.append(gc.get_freeze_count()))
monitor.run_pass()
after_index, frozen_during_index = gc.get_freeze_count(), len(freezes)
monitor.run_pass()  # a routine full pass: nothing frozen again
print(len(monitor.views), at_publish[0], after_index, gc.get_freeze_count(), frozen_during_index)
monitor.close()
"""


def _numbers_printed(script: str, home: GuildHome, logdir: str) -> list[int]:
    """What ``script``, run over the home and log dir in a process of its own (as the
    server's: freezing is for the whole process), prints: whole numbers."""
    done = subprocess.run(
        [sys.executable, "-c", script, home.path, logdir],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    return [int(word) for word in done.stdout.split()]


def test_after_a_large_index_the_long_lived_objects_leave_garbage_collection(home, logdir):
    runs = _runs(home)
    printed = _numbers_printed(_FREEZE_SCRIPT, home, logdir)
    listed, first_batch, after_index, after_routine, freezes = printed
    assert listed == len(runs)
    # Not only at batches: every FREEZE_EVERY runs, so no full collection walks a
    # whole batch's objects.
    assert freezes >= len(runs) // _FREEZE_EVERY
    # Frozen from the first batch published on, while the index grows the heap.
    assert 0 < first_batch < after_index
    # Every run's log (a RunLog, its mirror, summaries, images…) is among them.
    assert after_index > 10 * len(runs)
    assert after_routine <= after_index  # freed ones leave it; none were added


_LISTING_FREEZE_SCRIPT = """
import gc, sys
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources, read_guild_run

home = GuildHome(sys.argv[1])
listed = []
def list_runs():
    runs = home.list_runs()
    listed.extend(runs)
    return runs

monitor = RunsMonitor(sys.argv[2], list_runs, freeze_after_index=True)
before = [{"the server's": i} for i in range(100)]  # alive before the first pass
collectable = []
start = monitor.index.start
def index_start(*args):
    tracked = {id(o) for o in gc.get_objects()}
    collectable.append(sum(id(o) in tracked for o in [*before, *listed]))
    start(*args)
monitor.index.start = index_start
monitor.run_pass()
print(len(listed), collectable[0])
monitor.close()
"""


def test_the_runs_listed_for_a_first_index_leave_garbage_collection_before_it(home, logdir):
    # A full collection during the index would walk them all (and the server's own
    # objects): 0.16 s at 10,000 runs with every thread of the server waiting.
    runs = _runs(home)
    listed, collectable = _numbers_printed(_LISTING_FREEZE_SCRIPT, home, logdir)
    assert listed == len(runs)
    assert collectable == 0


@pytest.mark.parametrize(
    ("cpus", "runs", "children"),
    [(2, 10_000, 2), (8, 10_000, 2), (8, 1_500, 1), (1, 10_000, 1), (8, 500, 1)],
)
def test_index_children_are_one_per_thousand_runs_at_most_two_and_the_cpus(
    monkeypatch, cpus, runs, children
):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert indexchild.children_for(runs) == children
