"""TensorBoardProcess against a real TensorBoard subprocess on a real log dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.processes import PRIVATE_DIR_PREFIX, child_environment
from jupyter_guildimg.engine.runs import RunsDir
from jupyter_guildimg.engine.tbprobe import StderrWarnings, count_runs, files_warning
from jupyter_guildimg.engine.tbprocess import (
    StartResult,
    TensorBoardProcess,
    status_summary,
)
from jupyter_guildimg.engine.tfevent import EventFileWriter

from helpers import age, png

PREFIX = "jupyter_guildimg-tensorboard-"


@pytest.fixture
def tb_logdir(tmp_path: Path) -> Iterator[str]:
    """A log dir holding one run with one scalar. Whatever still runs on it afterwards
    (a failed test) is killed, so no TensorBoard outlives the test session."""
    logdir = tmp_path / "tb-logdir"
    with EventFileWriter(logdir / "run-a") as writer:
        writer.add_scalar("loss", 0.5, step=1)
    yield str(logdir)
    for pid in processes_on(str(logdir)):
        with contextlib.suppress(ProcessLookupError):
            kill9(pid)


def live_processes() -> Iterator[tuple[int, int, bytes]]:
    """(pid, process group, command line) of every process that is not a zombie. Zombies
    are skipped: they have exited, and this machine's init reaps orphaned ones slowly."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":
            yield int(entry), int(fields[2]), cmdline


def processes_on(logdir: str) -> list[int]:
    """Live processes whose command line mentions ``logdir`` (TensorBoard, its data server)."""
    return [pid for pid, _, cmdline in live_processes() if logdir.encode() in cmdline]


def group_members(pgid: int) -> list[int]:
    return [pid for pid, group, _ in live_processes() if group == pgid]


def kill9(pid: int) -> None:
    """SIGKILL a TensorBoard, and remove the info file TensorBoard's notebook helpers list
    running instances from, which a killed TensorBoard cannot remove itself."""
    os.kill(pid, signal.SIGKILL)
    info = Path(tempfile.gettempdir(), ".tensorboard-info", f"pid-{pid}.info")
    info.unlink(missing_ok=True)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def records(runtime_dir: Path) -> list[str]:
    return sorted(p.name for p in runtime_dir.glob(f"{PREFIX}*.json"))


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


@pytest.mark.tensorboard
def test_start_ready_serves_the_run_and_stop_leaves_nothing(tb_logdir: str, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    tb = TensorBoardProcess(
        tb_logdir, path_prefix="guildimg/tensorboard/", runtime_dir=str(runtime)
    )
    assert tb.state()["status"] == "stopped" and tb.url is None
    assert tb.state()["summary"] == "TensorBoard is not running"

    async def scenario() -> None:
        began = time.monotonic()
        first, second = await asyncio.gather(tb.start(), tb.start())
        print(f"start-to-ready {time.monotonic() - began:.2f} s")
        assert first == second == StartResult("started", tb.port, "")
        state = tb.state()
        assert state["status"] == "ready" and state["reason"] == ""
        assert state["summary"] == "TensorBoard is ready"
        assert state["port"] == tb.port and state["pid"] == tb.pid and state["restarts"] == 0
        assert isinstance(state["stderr_tail"], list)
        assert time.time() - 120 < state["started"] <= time.time()
        json.dumps(state)
        pid = tb.pid
        assert pid is not None and os.getpgid(pid) == pid  # its own process group
        assert tb.url == f"http://127.0.0.1:{tb.port}/guildimg/tensorboard/"
        assert await tb.start() == first  # already running: the same process

        status, body = await asyncio.to_thread(get, tb.url + "data/runs")
        assert status == 200 and json.loads(body) == ["run-a"]
        status, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{tb.port}/data/runs")
        assert status == 404  # only under the prefix

        (name,) = records(runtime)
        assert name == f"{PREFIX}{os.getpid()}-{pid}.json"
        record = json.loads((runtime / name).read_text())
        assert record["owner_pid"] == os.getpid() and record["pid"] == pid
        assert record["port"] == tb.port and record["logdir"] == tb_logdir
        assert "--bind_all" not in record["cmdline"] and "127.0.0.1" in record["cmdline"]

        await tb.stop()
        assert tb.status == "stopped" and tb.pid is None and tb.url is None
        assert gone(pid) and group_members(pid) == [] and processes_on(tb_logdir) == []
        assert records(runtime) == []
        await tb.stop()  # idempotent
        assert tb.status == "stopped"

    run(scenario)


@pytest.mark.tensorboard
def test_killed_tensorboard_comes_back_then_gives_up(tb_logdir: str, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    tb = TensorBoardProcess(tb_logdir, max_restarts=2, runtime_dir=str(runtime))

    async def scenario() -> None:
        assert (await tb.start()).outcome == "started"
        first_pid, port = tb.pid, tb.port
        assert first_pid is not None
        kill9(first_pid)
        await until(lambda: tb.status == "starting")
        await until(lambda: tb.status == "ready" and tb.pid not in (None, first_pid))
        assert tb.restarts == 1 and tb.port == port  # the same address, when still free
        assert gone(first_pid)
        assert records(runtime) == [f"{PREFIX}{os.getpid()}-{tb.pid}.json"]
        status, _ = await asyncio.to_thread(get, f"{tb.url}data/environment")
        assert status == 200

        # A second crash within the window reaches max_restarts: no more restarts.
        second_pid = tb.pid
        assert second_pid is not None
        kill9(second_pid)
        await until(lambda: tb.status == "failed")
        assert tb.reason.startswith("TensorBoard exited 2 times; last error: ")
        assert "SIGKILL" in tb.reason
        assert tb.pid is None and processes_on(tb_logdir) == [] and records(runtime) == []

        # start() after "failed" tries again, with the count reset.
        assert (await tb.start()).outcome == "started"
        assert tb.status == "ready" and tb.restarts == 0 and tb.reason == ""
        await tb.stop()
        assert processes_on(tb_logdir) == []

    run(scenario)


@pytest.mark.tensorboard
def test_tensorboard_exiting_at_once_is_failed_with_its_error(tb_logdir: str) -> None:
    tb = TensorBoardProcess(tb_logdir, extra_args=["--no_such_flag"])

    async def scenario() -> None:
        result = await tb.start()
        assert result.outcome == "failed" and result.port is None
        assert "unrecognized arguments: --no_such_flag" in result.message
        assert "exited with status" in result.message
        assert tb.status == "failed" and tb.reason == result.message
        assert tb.pid is None and processes_on(tb_logdir) == []
        assert any("--no_such_flag" in line for line in tb.state()["stderr_tail"])
        # The summary is the reason's first sentence; the stderr stays in the reason.
        summary = tb.state()["summary"]
        assert summary.startswith("TensorBoard failed: TensorBoard exited with status ")
        assert summary.endswith(" before it was ready.") and "no_such_flag" not in summary
        await tb.stop()
        assert tb.status == "stopped"

    run(scenario)


def test_every_status_has_one_summary_sentence() -> None:
    assert status_summary("stopped") == "TensorBoard is not running"
    assert status_summary("starting") == "Starting TensorBoard…"
    assert status_summary("ready") == "TensorBoard is ready"
    reason = "TensorBoard timed out after 0.05 s. Its stderr ends with:\nE0101 x.py] y. z"
    assert (
        status_summary("failed", reason)
        == "TensorBoard failed: TensorBoard timed out after 0.05 s."
    )
    assert status_summary("failed", "Internal error: boom\nmore") == (
        "TensorBoard failed: Internal error: boom"
    )
    assert status_summary("failed", "") == "TensorBoard failed"
    long = status_summary("failed", "x" * 500)
    assert len(long) == len("TensorBoard failed: ") + 200 and long.endswith("…")


@pytest.mark.parametrize(
    "arg", ["--bind_all", "--host", "--host=0.0.0.0", "-bind_all", "--port", "--path_prefix=/x"]
)
def test_flags_that_move_tensorboard_off_localhost_are_refused(tb_logdir: str, arg: str) -> None:
    with pytest.raises(ValueError, match=r"not allowed.*127\.0\.0\.1"):
        TensorBoardProcess(tb_logdir, extra_args=["--reload_multifile", "true", arg])


@pytest.mark.tensorboard
def test_readiness_timeout_stops_the_process(tb_logdir: str, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    tb = TensorBoardProcess(tb_logdir, ready_timeout=0.05, runtime_dir=str(runtime))

    async def scenario() -> None:
        result = await tb.start()
        assert result.outcome == "timed_out" and result.port is None
        assert "timed out after 0.05 s" in result.message
        assert tb.status == "failed" and "timed out after 0.05 s" in tb.reason
        assert tb.pid is None and processes_on(tb_logdir) == [] and records(runtime) == []

    run(scenario)


@pytest.mark.tensorboard
def test_restart_and_stop_now(tb_logdir: str, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    tb = TensorBoardProcess(tb_logdir, runtime_dir=str(runtime))

    async def scenario() -> None:
        # A stop while a start is under way: the start answers "failed", nothing is left.
        starting = asyncio.create_task(tb.start())
        await until(lambda: tb.pid is not None)
        await tb.stop()
        assert (await starting).outcome == "failed" and processes_on(tb_logdir) == []

        assert (await tb.start()).outcome == "started"
        first_pid = tb.pid
        assert (await tb.restart()).outcome == "started"
        assert tb.pid != first_pid and tb.status == "ready"
        assert first_pid is not None and gone(first_pid)
        assert len(records(runtime)) == 1

        tb.stop_now()  # blocking, as from atexit
        assert tb.status == "stopped" and tb.pid is None
        assert processes_on(tb_logdir) == [] and records(runtime) == []
        await tb.stop()  # reaps what stop_now left to the loop

    run(scenario)


def dead_pid() -> int:
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    return proc.pid


def write_record(runtime: Path, owner: int, pid: int, logdir: str) -> Path:
    path = runtime / f"{PREFIX}{owner}-{pid}.json"
    record = {"owner_pid": owner, "pid": pid, "port": 1, "logdir": logdir, "started": 0.0}
    path.write_text(json.dumps(record | {"cmdline": []}))
    return path


@pytest.mark.tensorboard
def test_cleanup_orphans_kills_only_orphaned_tensorboards(tb_logdir: str, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", tb_logdir, "--port", "0"]
    orphan = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        dead = dead_pid()
        orphaned = write_record(runtime, dead, orphan.pid, tb_logdir)
        reused = write_record(runtime, dead, sleeper.pid, tb_logdir)  # pid now not TensorBoard
        owned = write_record(runtime, os.getpid(), orphan.pid, tb_logdir)  # owner alive
        (runtime / "unrelated.json").write_text("{}")

        assert TensorBoardProcess.cleanup_orphans(str(runtime)) == [orphan.pid]

        assert orphan.wait(timeout=10) is not None
        assert processes_on(tb_logdir) == []
        assert sleeper.poll() is None  # a reused pid is never killed
        assert not orphaned.exists() and not reused.exists()
        assert owned.exists() and (runtime / "unrelated.json").exists()
        assert TensorBoardProcess.cleanup_orphans(str(runtime)) == []
        assert TensorBoardProcess.cleanup_orphans(str(tmp_path / "missing")) == []
    finally:
        for proc in (orphan, sleeper):
            proc.kill()
            proc.wait()


OWNER = """
import asyncio, sys
from jupyter_guildimg.engine.tbprocess import TensorBoardProcess

async def main():
    tb = TensorBoardProcess(sys.argv[1], runtime_dir=sys.argv[2])
    print((await tb.start()).outcome, tb.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.tensorboard
def test_owner_killed_with_sigkill_leaves_an_orphan_the_next_owner_removes(
    tb_logdir: str, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, tb_logdir, str(runtime)], stdout=subprocess.PIPE, text=True
    )
    with owner:
        assert owner.stdout is not None
        outcome, pid = owner.stdout.readline().split()
        assert outcome == "started"
        owner.kill()
        owner.wait()
    assert records(runtime) == [f"{PREFIX}{owner.pid}-{pid}.json"]
    assert int(pid) in processes_on(tb_logdir)  # TensorBoard outlived its owner
    private = json.loads((runtime / records(runtime)[0]).read_text())["private_dir"]
    assert os.path.isdir(private)

    assert TensorBoardProcess.cleanup_orphans(str(runtime)) == [int(pid)]
    assert processes_on(tb_logdir) == [] and records(runtime) == []
    assert not os.path.exists(private)  # its TMPDIR went with it


def test_tensorboard_gets_a_minimal_environment() -> None:
    server = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/src",
        "TMPDIR": "/tmp",
        "JUPYTER_GUILDIMG_TOKEN": "t",
        "JUPYTERHUB_API_TOKEN": "t",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "k",
        "GITHUB_TOKEN": "t",
        "MY_PASSWORD": "p",
        "LC_SECRET_KEY": "k",
        "JUPYTER_GUILDIMG_URL": "http://127.0.0.1:8888/",
        "SSH_AUTH_SOCK": "/run/agent",
    }
    assert child_environment("/private/tb", server) == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/src",
        "TMPDIR": "/private/tb",
    }


@pytest.mark.tensorboard
def test_a_secret_prefix_keeps_tensorboard_to_who_knows_it(
    tb_logdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "leak-me-not")
    runtime = tmp_path / "runtime"
    tb = TensorBoardProcess(
        tb_logdir, path_prefix="/tb", runtime_dir=str(runtime), secret_prefix=True
    )

    async def scenario() -> None:
        assert (await tb.start()).outcome == "started"
        pid, port = tb.pid, tb.port
        assert pid is not None and tb.url is not None
        secret = tb.served_prefix.removeprefix("/tb/")
        assert len(secret) >= 32 and tb.url == f"http://127.0.0.1:{port}/tb/{secret}/"
        for path in ("/", "/tb/", "/tb/data/runs"):
            assert (await asyncio.to_thread(get, f"http://127.0.0.1:{port}{path}"))[0] == 404
        status, body = await asyncio.to_thread(get, tb.url + "data/runs")
        assert status == 200 and json.loads(body) == ["run-a"]

        # Not on its command line (any local user can read it), nor in what we show.
        assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert secret not in json.dumps(tb.state())
        assert any("TensorBoard 2" in line for line in tb.state()["stderr_tail"])
        (record,) = runtime.glob(f"{PREFIX}*.json")
        assert secret not in record.read_text()
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if item
        )
        assert "SOME_SERVICE_TOKEN" not in environ
        private = Path(environ["TMPDIR"])
        assert private.name.startswith(PRIVATE_DIR_PREFIX) and private.stat().st_mode & 0o077 == 0
        # The flag file that carried the secret is gone; TensorBoard's info file (which
        # names its path) is in the private dir, not in the shared one.
        assert os.listdir(private) == [".tensorboard-info"]
        shared = Path(tempfile.gettempdir(), ".tensorboard-info", f"pid-{pid}.info")
        assert not shared.exists()
        assert (await tb.restart()).outcome == "started"
        assert secret not in tb.served_prefix  # a new secret for every start
        await tb.stop()
        assert tb.served_prefix == "/tb"
        assert not private.exists()

    run(scenario)


# -- open files ---------------------------------------------------------------------------

RUNS, IMAGES, LOW_SOFT_LIMIT = 30, 10, 256  # 300 event files: more than 256 may open


@contextlib.contextmanager
def soft_file_limit(soft: int) -> Iterator[int]:
    """This process's soft RLIMIT_NOFILE lowered to ``soft`` (the processes it starts
    inherit it); yields the hard limit, untouched. Restored on exit."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield before[1]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def open_files_limit(pid: int) -> int:
    """The soft "Max open files" of ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-files limit for {pid}")


def data_server(pid: int) -> int | None:
    """TensorBoard's data server (the Rust one, which holds the event files open), if it
    runs in ``pid``'s group."""
    for member, group, cmdline in live_processes():
        if group == pid and member != pid and b"tensorboard_data_server" in cmdline:
            return member
    return None


def monitored_logdir(root: Path) -> str:
    """A log dir the monitor wrote for RUNS runs of IMAGES images each: one event file
    per image, RUNS × IMAGES in all."""
    for r in range(RUNS):
        run = root / "runs" / f"run-{r:02d}"
        run.mkdir(parents=True)
        for i in range(IMAGES):
            (run / f"img-{i}.png").write_bytes(png(colour=(r * 8, i * 20, 0)))
            age(str(run / f"img-{i}.png"), 3600)
    logdir = str(root / "logdir")
    monitor = RunsMonitor(logdir, RunsDir(root / "runs").list_runs)
    try:
        monitor.run_once()
    finally:
        monitor.close()
    return logdir


def image_tags(url: str) -> dict[str, int]:
    """How many image tags TensorBoard serves for each run."""
    status, body = get(url + "data/plugin/images/tags")
    assert status == 200
    return {run: len(tags) for run, tags in json.loads(body).items()}


def every_image_served(url: str) -> bool:
    counts = image_tags(url)
    return len(counts) == RUNS and set(counts.values()) == {IMAGES}


@pytest.mark.tensorboard
def test_tensorboard_opens_every_event_file_even_under_a_low_soft_limit(tmp_path: Path) -> None:
    logdir = monitored_logdir(tmp_path)

    async def raised(hard: int) -> None:
        tb = TensorBoardProcess(logdir, files_needed=lambda: RUNS * IMAGES)
        assert tb.state()["files"] == {"needed": RUNS * IMAGES, "limit": hard}
        assert (await tb.start()).outcome == "started"
        assert tb.pid is not None and tb.url is not None
        try:
            assert open_files_limit(tb.pid) == hard
            await until(lambda: data_server(tb.pid or 0) is not None)
            assert open_files_limit(data_server(tb.pid) or 0) == hard  # it inherits it
            await until(lambda: every_image_served(tb.url or ""), timeout=60)
            await asyncio.sleep(2 * tb.reload_interval)  # and still, after two reloads
            assert await asyncio.to_thread(every_image_served, tb.url)
            state = tb.state()
            assert state["files"] == {"needed": RUNS * IMAGES, "limit": hard}
            assert state["warnings"] == []
            assert data_server(tb.pid) is not None  # it did not die of EMFILE
        finally:
            await tb.stop()

    async def not_raised() -> None:
        # The same TensorBoard with the parent's soft limit: it runs out of descriptors,
        # and says so.
        tb = TensorBoardProcess(logdir, raise_file_limit=False, files_needed=lambda: 300)
        assert tb.state()["files"]["limit"] == LOW_SOFT_LIMIT
        assert (await tb.start()).outcome == "started"
        assert tb.pid is not None
        try:
            assert open_files_limit(tb.pid) == LOW_SOFT_LIMIT
            await until(lambda: any("Too many open files" in w for w in tb.state()["warnings"]))
            state = tb.state()
            assert state["files"] == {"needed": 300, "limit": LOW_SOFT_LIMIT}
            warnings = state["warnings"]
            assert warnings[0].startswith("TensorBoard needs about 300 open files for the 30")
            assert all(w.startswith("TensorBoard: ") for w in warnings[1:])
            assert 1 < len(warnings) <= 7  # deduplicated: not one per event file
        finally:
            await tb.stop()

    async def scenario() -> None:
        with soft_file_limit(LOW_SOFT_LIMIT) as hard:
            assert hard > 2 * RUNS * IMAGES, "the hard limit is too low for this test"
            await raised(hard)
            await not_raised()

    run(scenario)
    assert processes_on(logdir) == []


def test_a_warning_says_when_tensorboard_needs_nearly_every_file_it_may_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logdir = tmp_path / "view"
    for name in ("a", "b", ".hidden"):
        (logdir / name).mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (logdir / "c").symlink_to(tmp_path / "elsewhere")
    (logdir / "file").write_text("")
    assert count_runs(str(logdir)) == 3 and count_runs(str(tmp_path / "missing")) == 0

    needed = [0]

    def files_needed() -> int:
        if needed[0] < 0:
            raise RuntimeError("boom")
        return needed[0]

    tb = TensorBoardProcess(str(logdir), files_needed=files_needed)
    limit = tb.file_limit
    assert limit == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert tb.state()["files"] == {"needed": 0, "limit": limit} and tb.state()["warnings"] == []
    needed[0] = int(0.9 * limit)
    assert tb.state()["warnings"] == []
    needed[0] = limit + 1
    state = tb.state()
    assert state["files"] == {"needed": limit + 1, "limit": limit}
    assert state["warnings"] == [
        f"TensorBoard needs about {limit + 1:,} open files for the 3 runs shown but may open "
        f"only {limit:,}: show fewer runs (choose the runs in TensorBoard, or lower the "
        "tensorboard_max_runs setting) or raise the hard limit (ulimit -Hn)"
    ]
    json.dumps(state)
    needed[0] = -1  # a failing callback counts 0, and is logged
    assert tb.state()["files"]["needed"] == 0 and "files_needed failed" in caplog.text
    assert TensorBoardProcess(str(logdir)).state()["files"]["needed"] == 0
    assert files_warning(2000, 1024, lambda: 1) == (
        "TensorBoard needs about 2,000 open files for the run shown but may open only "
        "1,024: show fewer runs (choose the runs in TensorBoard, or lower the "
        "tensorboard_max_runs setting) or raise the hard limit (ulimit -Hn)"
    )

    def runs() -> int:
        raise AssertionError("runs are counted only for a warning")

    assert files_warning(900, 1000, runs) is None


def test_tensorboard_warnings_about_files_are_kept_once_each() -> None:
    """As TensorBoard 2.21 and its data server write them."""
    emfile = (
        "[2026-12-02T15:11:07Z WARN  rustboard_core::run] Failed to open event file "
        'EventFileBuf("/v/run-{}/.images/events.out.tfevents.{}.image"): Os {{ code: 24, '
        'kind: Uncategorized, message: "Too many open files" }}'
    )
    warnings = StderrWarnings(limit=4)
    assert not warnings.feed("TensorBoard 2.21.0 at http://localhost:6006/ (Press CTRL+C)")
    assert not warnings.feed("W1202 15:11:37.480239 1396 server_ingester.py:186] Failed to "
                             "communicate with data server at localhost:43949")  # fmt: skip
    for run in range(3):
        for image in range(10):
            assert warnings.feed(emfile.format(run, image))
    listener = (
        "Error: tonic::transport::Error(Transport, hyper::Error(Accept, Os { code: 24, kind: "
        'Uncategorized, message: "Too many open files" }))'
    )
    assert warnings.feed(listener)
    denied = (
        "[2026-12-02T15:12:00Z WARN  rustboard_core::run] Failed to open event file "
        'EventFileBuf("/v/run-0/x.tfevents"): Os { code: 13, kind: PermissionDenied, '
        'message: "Permission denied" }'
    )
    assert warnings.feed(denied)
    unreadable = "E1202 15:12:01.000001 1 io.py:1] Unable to read {}: no such file"
    assert warnings.feed(unreadable.format("/v/y"))
    assert warnings.feed(unreadable.format("/v/z"))  # the same kind: counted
    assert warnings.feed("Error: permission denied, with nothing to tell it apart")
    assert warnings.sentences() == [
        "TensorBoard: " + emfile.format(0, 0).split("] ", 1)[1] + " (30 times)",
        "TensorBoard: " + listener,
        "TensorBoard: " + denied.split("] ", 1)[1],
        "TensorBoard: Unable to read /v/y: no such file (2 times)",
        "TensorBoard: 1 more line like these in its log",
    ]
    warnings.clear()
    assert warnings.sentences() == []
