"""The RunsMonitor: its guarantee that run directories are read-only to it, its
thread, its refusals, and a real TensorBoard reading what it wrote."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.monitor import (
    DEFAULT_INTERVAL,
    LogDirLockedError,
    RunsMonitor,
    RunView,
    logdir_in_use,
)
from jupyter_guildimg.engine.runs import Run, RunsDir, combine_sources
from jupyter_guildimg.engine.tfevent import EventReader
from jupyter_guildimg.guild.demo import DEMO_PROJECT
from jupyter_guildimg.guild.project import Project, write_run

from helpers import age, jpeg, png, run_logdir, summaries, tree_digest, wait_for

# -- the guarantee: run directories are read-only to the monitor -------------


def test_many_passes_leave_the_runs_tree_unchanged(home, logdir, tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "in.png").write_bytes(png())
    for i in range(3):
        run_dir = write_run(
            home.path,
            op="train",
            flags={"i": i, "on": True},
            label=f"run {i}",
            files={
                "a.png": png(),
                "deep/er/b.jpg": jpeg(),
                "broken.png": b"junk",
                "half.png": png()[:30],
                ".hidden.gif": b"GIF89a",
                ".guild/events.out.tfevents.1.h": b"",
            },
            sourcecode={"train.py": b"pass"},
        )
        os.symlink(dataset, os.path.join(run_dir, "data"))
        os.symlink(dataset / "in.png", os.path.join(run_dir, "in.png"))
    runs_tree = os.path.join(home.path, "runs")
    before = tree_digest(runs_tree)

    monitor = RunsMonitor(logdir, home.list_runs)
    for _ in range(5):
        monitor.run_once()
    monitor.close()
    RunsMonitor(logdir, home.list_runs, run_name_cb=lambda r: f"renamed {r.id}").run_once()
    RunsMonitor(logdir, home.list_runs).run_once()

    assert tree_digest(runs_tree) == before


# -- the thread and bad configuration ----------------------------------------


def test_interval_below_half_a_second_is_refused(logdir):
    with pytest.raises(ValueError, match=r"at least 0\.5"):
        RunsMonitor(logdir, list, interval=0.1)
    assert RunsMonitor(logdir, list, interval=0.5).interval == 0.5


def test_the_default_interval_is_one_second(logdir):
    assert RunsMonitor(logdir, list).interval == DEFAULT_INTERVAL == 1.0


# -- the change counter --------------------------------------------------------


def test_the_generation_goes_up_after_each_pass_that_changed_something(home, logdir):
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_pass()
    assert monitor.generation == 0  # no run: nothing changed
    write_run(home.path, op="a", files={"a.png": png()})
    monitor.run_pass()
    assert monitor.generation == 1 == monitor.status()["generation"]
    monitor.run_pass()
    assert monitor.generation == 1


def test_wait_for_change_wakes_on_a_changing_pass_and_on_close(home, logdir):
    monitor = RunsMonitor(logdir, home.list_runs)
    assert monitor.wait_for_change(-1, timeout=5) == 0  # already past: at once
    started = time.monotonic()
    assert monitor.wait_for_change(0, timeout=0.2) == 0  # timed out, unchanged
    assert time.monotonic() - started >= 0.15

    answers: list[int] = []

    def wait(since: int) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.append(monitor.wait_for_change(since, 30)))
        thread.start()
        return thread

    waiter = wait(0)
    write_run(home.path, op="a", files={"a.png": png()})
    monitor.run_pass()
    waiter.join(10)
    assert answers == [1]

    waiter = wait(1)
    monitor.close()
    waiter.join(10)
    assert not waiter.is_alive() and answers == [1, 1]


def test_the_thread_survives_a_failing_pass(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    calls = []
    lock = threading.Lock()

    def flaky_list_runs():
        with lock:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("source unreachable")
        return home.list_runs()

    monitor = RunsMonitor(logdir, flaky_list_runs, interval=0.5)
    monitor.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not summaries(logdir, run_dir):
            time.sleep(0.1)
    finally:
        monitor.stop()
    assert summaries(logdir, run_dir)
    assert any("source unreachable" in p.message for p in monitor.problems)
    assert not monitor.running


def test_one_run_failing_does_not_stop_the_others(home, logdir):
    blocked = write_run(home.path, op="a", files={"a.png": png()})
    fine = write_run(home.path, op="b", files={"b.png": png()})
    os.makedirs(logdir)
    # A file of the user's where the blocked run's log dir would go: the monitor
    # must not delete it, so that run cannot be mirrored this pass.
    Path(logdir, f"run-{os.path.basename(blocked)}").write_text("mine")

    report = RunsMonitor(logdir, home.list_runs, run_name_cb=lambda r: f"run-{r.id}").run_pass()

    assert [p for _, p in report.written] == ["b.png"]
    assert [p.run for p in report.problems] == [f"run-{os.path.basename(blocked)}"]
    assert "pass failed" in report.problems[0].message
    assert Path(logdir, f"run-{os.path.basename(blocked)}").read_text() == "mine"
    assert os.path.isdir(os.path.join(logdir, f"run-{os.path.basename(fine)}", ".images"))


def test_a_run_overlapping_the_log_dir_is_refused(home, tmp_path):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    inside = os.path.join(run_dir, "tb")
    before = tree_digest(run_dir)

    monitor = RunsMonitor(inside, home.list_runs)
    reports = [monitor.run_pass() for _ in range(2)]

    assert [r.runs for r in reports] == [0, 0]
    assert [p.message for r in reports for p in r.problems] == [
        f"the log dir {inside} is inside this run; nothing is written"
    ]
    assert not os.path.exists(inside)
    assert tree_digest(run_dir) == before


def test_runs_inside_the_log_dir_are_refused(home, tmp_path):
    write_run(home.path, op="a", files={"a.png": png()})
    report = RunsMonitor(os.path.dirname(home.path), home.list_runs).run_pass()
    assert report.runs == 0
    assert "lies inside the log dir" in report.problems[0].message


def test_overlap_with_the_log_dir_is_found_through_symlinks(tmp_path):
    """A runs directory reached through a symlinked parent, and a run dir that is
    itself a symlink, are judged by where they really are."""
    real_runs = tmp_path / "real"
    (real_runs / "a").mkdir(parents=True)
    (real_runs / "a" / "a.png").write_bytes(png())
    (tmp_path / "alias").symlink_to(real_runs)
    # The log dir inside run "a", named through its real path; the runs through the alias.
    inside = os.path.join(real_runs, "a", "tb")
    report = RunsMonitor(inside, RunsDir(tmp_path / "alias").list_runs).run_pass()
    assert report.runs == 0
    assert [p.message for p in report.problems] == [
        f"the log dir {inside} is inside this run; nothing is written"
    ]
    assert not os.path.exists(inside)

    # A run dir that is a symlink into the log dir is refused, its sibling taken.
    logdir = tmp_path / "logdir"
    (logdir / "mirrored").mkdir(parents=True)
    (logdir / "mirrored" / "m.png").write_bytes(png())
    runs = tmp_path / "runs"
    (runs / "b").mkdir(parents=True)
    (runs / "b" / "b.png").write_bytes(png())
    (runs / "link").symlink_to(logdir / "mirrored")

    def listed() -> list[Run]:
        return [Run(id=name, dir=str(runs / name), kind="dir") for name in ("b", "link")]

    report = RunsMonitor(str(logdir), listed).run_pass()
    assert report.runs == 1
    assert [p.message for p in report.problems] == [
        f"not monitored: the run lies inside the log dir {logdir}"
    ]


def test_plain_runs_directories_are_monitored(tmp_path, logdir):
    runs = tmp_path / "lightning_logs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())

    RunsMonitor(logdir, RunsDir(runs).list_runs).run_once()

    assert os.listdir(logdir) == ["version_0"]
    assert os.listdir(os.path.join(logdir, "version_0", ".images"))


# -- nothing is lost to what cannot be read -----------------------------------

LOOP_MESSAGE = (
    "cannot read: Too many levels of symbolic links; skipped, and runs there are kept as they were"
)


def _loop(path: Path) -> None:
    """A symlink to itself: stat() fails with ELOOP, for root too."""
    os.symlink(path.name, path)


def _history(monitor: RunsMonitor, run_id: str) -> dict[str, int]:
    (view,) = [v for v in monitor.views if v.run.id == run_id]
    return {path: len(revisions) for path, revisions in view.images.items()}


@pytest.mark.parametrize("combined", [True, False], ids=["combine_sources", "list_runs"])
def test_a_symlink_loop_in_a_runs_folder_loses_no_run_and_no_revision(tmp_path, logdir, combined):
    runs = tmp_path / "runs"
    (runs / "exp1").mkdir(parents=True)
    (runs / "exp2").mkdir()
    image = runs / "exp1" / "a.png"
    image.write_bytes(png(colour="red"))
    age(str(image), 120)
    (runs / "exp2" / "b.txt").write_text("x")
    source = RunsDir(runs)
    monitor = RunsMonitor(logdir, combine_sources([source]) if combined else source.list_runs)
    monitor.run_pass()

    _loop(runs / "exp2" / "loop")
    reports = [monitor.run_pass()]
    image.write_bytes(png(colour="green"))
    age(str(image), 60)
    reports.append(monitor.run_pass())
    os.remove(runs / "exp2" / "loop")
    reports.append(monitor.run_pass())

    assert [r.runs_removed for r in reports] == [[], [], []]
    assert [p for r in reports for _, p in r.written] == ["a.png"]
    problems = [(p.run, p.path, p.message) for r in reports for p in r.problems]
    assert problems == [("", str(runs / "exp2" / "loop"), LOOP_MESSAGE)]
    assert _history(monitor, "exp1") == {"a.png": 2}
    assert len(os.listdir(os.path.join(logdir, "exp1", ".images"))) == 2


def test_a_run_made_unreadable_is_kept_and_removed_only_once_gone(tmp_path, logdir):
    runs = tmp_path / "runs"
    for name in ("exp1", "exp2"):
        (runs / name).mkdir(parents=True)
        (runs / name / "a.png").write_bytes(png())
    monitor = RunsMonitor(logdir, combine_sources([RunsDir(runs)]))
    monitor.run_pass()
    before = tree_digest(os.path.join(logdir, "exp2", ".images"))

    # exp2's only file turns into a loop: whether exp2 is still a run is unknown.
    os.remove(runs / "exp2" / "a.png")
    _loop(runs / "exp2" / "a.png")
    unknown = monitor.run_pass()
    kept = _history(monitor, "exp2")
    after = tree_digest(os.path.join(logdir, "exp2", ".images"))
    shutil.rmtree(runs / "exp2")
    gone = monitor.run_pass()

    assert unknown.runs_removed == [] and unknown.runs == 2
    assert kept == {"a.png": 1} and after == before
    assert [p.path for p in unknown.problems] == [str(runs / "exp2" / "a.png")]
    assert gone.runs_removed == ["exp2"]
    assert sorted(os.listdir(logdir)) == ["exp1"]


def test_a_runs_folder_that_cannot_be_listed_keeps_its_runs(tmp_path, logdir):
    runs = tmp_path / "runs"
    (runs / "exp1").mkdir(parents=True)
    (runs / "exp1" / "a.png").write_bytes(png())
    monitor = RunsMonitor(logdir, combine_sources([RunsDir(runs)]))
    monitor.run_pass()

    os.rename(runs, tmp_path / "away")
    _loop(runs)
    reports = [monitor.run_pass() for _ in range(2)]
    os.remove(runs)
    os.rename(tmp_path / "away", runs)
    back = monitor.run_pass()

    assert [(r.runs, r.images, r.runs_removed) for r in reports] == [(1, 1, [])] * 2
    assert [p.path for r in reports for p in r.problems] == [str(runs)]
    assert back.runs_added == [] and back.runs_removed == []
    assert _history(monitor, "exp1") == {"a.png": 1}


def test_a_guild_run_made_unreadable_is_kept_and_removed_only_once_gone(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_pass()
    name = os.path.basename(run_logdir(logdir, run_dir))
    guild = Path(run_dir, ".guild")

    os.rename(guild, guild.with_name("guild.away"))
    _loop(guild)
    unknown = monitor.run_pass()
    kept = [v.name for v in monitor.views]
    os.remove(guild)
    os.rename(guild.with_name("guild.away"), guild)
    back = monitor.run_pass()
    shutil.rmtree(run_dir)
    gone = monitor.run_pass()

    assert unknown.runs_removed == [] and kept == [name]
    assert [p.path for p in unknown.problems] == [str(guild)]
    assert back.runs_added == [] and back.written == []
    assert gone.runs_removed == [name]


def test_a_listing_callback_that_raises_keeps_every_run(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    failing = False

    def list_runs():
        if failing:
            raise OSError("source unreachable")
        return home.list_runs()

    monitor = RunsMonitor(logdir, list_runs)
    monitor.run_pass()
    views = monitor.views
    before = tree_digest(logdir)

    failing = True
    reports = [monitor.run_pass() for _ in range(3)]

    assert [(r.runs, r.runs_removed) for r in reports] == [(1, [])] * 3
    assert monitor.views == views
    assert tree_digest(logdir) == before
    problems = [p.message for r in reports for p in r.problems]
    assert problems == ["listing runs failed: OSError: source unreachable; the runs known are kept"]
    assert monitor.status()["problems"][-1]["message"] == problems[0]
    failing = False
    assert monitor.run_pass().runs_removed == []
    assert len(summaries(logdir, run_dir)) == 1


# -- health: a pass that does not end shows ----------------------------------


def test_a_pass_running_past_the_bound_shows_as_stalled(home, logdir):
    write_run(home.path, op="a", files={"a.png": png()})
    entered, release = threading.Event(), threading.Event()

    def stuck_list_runs():
        entered.set()
        release.wait(60)
        return home.list_runs()

    monitor = RunsMonitor(logdir, stuck_list_runs, stall_after=0.2)
    idle = monitor.status()
    worker = threading.Thread(target=monitor.run_pass)
    worker.start()
    try:
        assert entered.wait(30)
        stalled = wait_for(
            lambda: (status := monitor.status())["stalled"] and status, 30, "stalled"
        )
    finally:
        release.set()
        worker.join(30)
    done = monitor.status()

    assert (idle["pass_started"], idle["pass_running_for"], idle["stalled"]) == (None, None, False)
    assert stalled["pass_started"] is not None and stalled["pass_running_for"] > 0.2
    assert (done["pass_started"], done["stalled"], done["passes"]) == (None, False, 1)


def test_the_stall_bound_defaults_to_ten_intervals_and_at_least_30_seconds(logdir):
    assert RunsMonitor(logdir, list, interval=1).stall_bound == 30
    assert RunsMonitor(logdir + "2", list, interval=5).stall_bound == 50


# -- one monitor per log dir -------------------------------------------------


def test_a_second_monitor_on_the_log_dir_is_refused_naming_the_holder(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    first = RunsMonitor(logdir, home.list_runs)
    first.run_pass()
    second = RunsMonitor(logdir, home.list_runs)

    with pytest.raises(LogDirLockedError, match=rf"in use .* pid {os.getpid()}, this process"):
        second.run_pass()
    with pytest.raises(LogDirLockedError):
        second.acquire_logdir()

    assert "in use by another monitor" in second.status()["logdir_error"]
    assert first.status()["logdir_error"] is None
    assert logdir_in_use(logdir)
    first.close()
    assert not logdir_in_use(logdir)
    second.run_pass()
    assert second.status()["logdir_error"] is None
    assert len(summaries(logdir, run_dir)) == 1
    assert os.listdir(logdir) == [os.path.basename(run_logdir(logdir, run_dir))]


HOLDER = """
import sys
from jupyter_guildimg.engine.monitor import RunsMonitor
monitor = RunsMonitor(sys.argv[1], list)
monitor.acquire_logdir()
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_monitor_in_another_process_holds_the_log_dir_until_it_dies(home, logdir):
    write_run(home.path, op="a", files={"a.png": png()})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, logdir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        monitor = RunsMonitor(logdir, home.list_runs)
        with pytest.raises(LogDirLockedError) as refused:
            monitor.run_pass()
        in_use = logdir_in_use(logdir)
    finally:
        holder.kill()
        holder.wait(30)
        holder.stdin.close()
        holder.stdout.close()

    assert refused.value.pid == holder.pid
    assert f"pid {holder.pid})" in str(refused.value) and logdir in str(refused.value)
    assert in_use and not logdir_in_use(logdir)
    assert monitor.run_pass().runs_added  # a killed holder holds nothing


def test_the_thread_waits_for_a_held_log_dir_and_says_so_once(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    holder = RunsMonitor(logdir, list)
    holder.acquire_logdir()
    monitor = RunsMonitor(logdir, home.list_runs, interval=0.5)
    monitor.start()
    try:
        wait_for(lambda: monitor.status()["logdir_error"], 30, "the refusal")
        wait_for(lambda: monitor.passes == 0 and len(monitor.problems) == 1, 30, "one problem")
        holder.close()
        wait_for(lambda: monitor.views, 30, "capture to start")
    finally:
        monitor.stop()
    assert len(summaries(logdir, run_dir)) == 1
    (problem,) = monitor.problems
    assert problem.message.startswith(f"log dir {logdir!r} is in use")
    assert monitor.status()["logdir_error"] is None


def test_a_closed_monitor_lets_the_log_dir_go_for_good(home, logdir):
    write_run(home.path, op="a", files={"a.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs, interval=0.5)
    monitor.start()
    wait_for(lambda: monitor.passes, 30, "a pass")
    monitor.close()

    assert not monitor.running and not logdir_in_use(logdir)
    shutil.rmtree(logdir)
    with pytest.raises(RuntimeError, match="closed"):
        monitor.run_pass()
    assert not os.path.exists(logdir)


# -- revisions per image -----------------------------------------------------


def test_revisions_beyond_the_cap_are_dropped_and_counted(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(colour="red")})
    image = os.path.join(run_dir, "a.png")
    monitor = RunsMonitor(logdir, home.list_runs, max_revisions_per_image=2)
    for i, colour in enumerate(["red", "green", "blue"]):
        Path(image).write_bytes(png(colour=colour))
        age(image, 300 - 60 * i)
        monitor.run_pass()

    (view,) = monitor.views
    assert len(view.images["a.png"]) == 2
    assert view.dropped == {"a.png": 1}
    assert len(summaries(logdir, run_dir)) == 2


def test_no_revision_cap_keeps_every_revision(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(colour="red")})
    image = os.path.join(run_dir, "a.png")
    monitor = RunsMonitor(logdir, home.list_runs, max_revisions_per_image=None)
    for i, colour in enumerate(["red", "green", "blue"]):
        Path(image).write_bytes(png(colour=colour))
        age(image, 300 - 60 * i)
        monitor.run_pass()
    (view,) = monitor.views
    assert len(view.images["a.png"]) == 3 and view.dropped == {}
    with pytest.raises(ValueError, match="max_revisions_per_image"):
        RunsMonitor(logdir, list, max_revisions_per_image=-1)


def test_an_image_over_the_size_limit_is_reported_and_not_summarized(home, logdir):
    big = png(size=(64, 64), colour="red")
    run_dir = write_run(home.path, op="a", files={"big.png": big, "small.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs, max_image_bytes=len(big) - 1)
    report = monitor.run_pass()

    (view,) = monitor.views
    assert list(view.images) == ["small.png"]
    (problem,) = report.problems
    assert problem.path == "big.png" and "too large" in problem.message
    assert len(summaries(logdir, run_dir)) == 1


def test_a_run_view_made_elsewhere_drops_nothing():
    assert RunView(Run(id="a", dir="/a"), "a", "/logdir/a", {}).dropped == {}


def test_a_log_dir_goes_on_in_either_event_form_and_the_catalog_reads_both(home, logdir):
    run_dir = write_run(home.path, op="a", files={"x.png": png()})
    image = Path(run_dir, "x.png")
    key = os.path.basename(run_dir)
    written: list[bytes] = []
    for revision_steps, seconds_ago, colour in ((False, 300, "red"), (True, 200, "green")):
        data = png(colour=colour)
        image.write_bytes(data)
        age(str(image), seconds_ago)
        monitor = RunsMonitor(logdir, home.list_runs, revision_steps=revision_steps)
        assert [path for _, path in monitor.run_pass().written] == ["x.png"]
        assert monitor.run_pass().written == []
        written.append(data)
        monitor.close()
    monitor = RunsMonitor(logdir, home.list_runs)  # back to the default form
    assert monitor.run_pass().written == []
    image.write_bytes(png((8, 8)))
    age(str(image), 100)
    assert [path for _, path in monitor.run_pass().written] == ["x.png"]
    written.append(png((8, 8)))

    images = os.path.join(run_logdir(logdir, run_dir), ".images")
    steps = [(e.step, e.wall_time > 0) for e in EventReader(images)]
    assert steps == [(0, False), (1, True), (0, False)]
    catalog = Catalog(monitor)
    (entry,) = catalog.images(key)["images"]
    assert [r["revision"] for r in entry["revisions"]] == [2, 1, 0]
    assert [catalog.image(key, "x.png", n).data for n in (0, 1, 2)] == written
    catalog.close()
    monitor.close()


# -- logs: names from the file system cannot forge log lines ------------------


def test_file_names_with_newlines_and_escapes_stay_on_one_log_line(tmp_path, logdir, caplog):
    runs = tmp_path / "runs"
    run = runs / "evil\x1b[2J\nWARNING forged run"
    run.mkdir(parents=True)
    (run / "bad\nWARNING forged\x1b[31m.png").write_bytes(b"not an image")
    _loop(run / "loop\nWARNING forged")

    report = RunsMonitor(logdir, RunsDir(runs).list_runs).run_pass()

    assert len(report.problems) == 2
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("jupyter_guildimg")]
    assert len(messages) >= 2
    for message in messages:
        assert "\n" not in message and "\x1b" not in message


# -- a real TensorBoard reads what the monitor wrote -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tensorboard_program(tmp_path):
    """Start the real ``tensorboard`` program on a log dir; yields a GET helper."""
    processes = []

    def start(logdir: str) -> Callable[[str, dict | None], httpx.Response]:
        port = _free_port()
        stderr = open(tmp_path / "tensorboard.log", "wb")  # noqa: SIM115 - closed below
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir]
        command += ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr, start_new_session=True)
        processes.append((process, stderr))
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def get(path: str, params: dict | None = None) -> httpx.Response:
            return client.get(path, params=params)

        wait_for(lambda: _answers(get), 60, f"TensorBoard to listen on {port}")
        return get

    yield start
    for process, stderr in processes:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
        stderr.close()


def _answers(get) -> bool:
    try:
        return get("/data/runs").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.tensorboard
def test_tensorboard_shows_images_their_latest_bytes_and_the_runs_scalars(
    home, logdir, tensorboard_program
):
    project = Project(DEMO_PROJECT, home=home.path)
    run = project.run("train", {"epochs": 3})
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    name = os.path.basename(run_logdir(logdir, run.dir))
    get = tensorboard_program(logdir)

    def image_tags():
        tags = get("/data/plugin/images/tags").json().get(f"{name}/.images", {})
        return sorted(tags) if len(tags) == 3 else None

    assert wait_for(image_tags, 30, "image tags") == [
        "plots/attention.jpg",
        "plots/confusion.png",
        "samples.png",
    ]
    scalars = wait_for(lambda: get("/data/plugin/scalars/tags").json().get(name), 30, "scalars")
    assert {"loss", "time"} <= set(scalars)
    points = get("/data/plugin/scalars/scalars", {"run": name, "tag": "loss"}).json()
    assert [point[1] for point in points] == [0, 1, 2]

    changed = png((40, 24), colour="orange")
    Path(run.dir, "samples.png").write_bytes(changed)
    monitor.run_once()

    def latest_bytes():
        params = {"run": f"{name}/.images", "tag": "samples.png", "sample": 0}
        images = get("/data/plugin/images/images", params).json()
        if not images:
            return None
        data = get(f"/data/plugin/images/individualImage?{images[-1]['query']}").content
        return data if data == changed else None

    assert wait_for(latest_bytes, 30, "the changed image's bytes") == changed
