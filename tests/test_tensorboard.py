"""The RunsMonitor: its guarantee that run directories are read-only to it, its
thread, its refusals, and a real TensorBoard reading what it wrote."""

from __future__ import annotations

import os
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

from jupyter_guildimg.demo import DEMO_PROJECT
from jupyter_guildimg.project import Project, write_run
from jupyter_guildimg.runs import RunsDir
from jupyter_guildimg.tensorboard import RunsMonitor

from helpers import jpeg, png, run_logdir, summaries, tree_digest, wait_for

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
    RunsMonitor(logdir, home.list_runs, run_name_cb=lambda r: f"renamed {r.id}").run_once()
    RunsMonitor(logdir, home.list_runs).run_once()

    assert tree_digest(runs_tree) == before


# -- the thread and bad configuration ----------------------------------------


def test_interval_below_half_a_second_is_refused(logdir):
    with pytest.raises(ValueError, match=r"at least 0\.5"):
        RunsMonitor(logdir, list, interval=0.1)
    assert RunsMonitor(logdir, list, interval=0.5).interval == 0.5


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


def test_plain_runs_directories_are_monitored(tmp_path, logdir):
    runs = tmp_path / "lightning_logs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())

    RunsMonitor(logdir, RunsDir(runs).list_runs).run_once()

    assert os.listdir(logdir) == ["version_0"]
    assert os.listdir(os.path.join(logdir, "version_0", ".images"))


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
