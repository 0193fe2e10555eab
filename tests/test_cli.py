"""The ``guildimg`` command, run for real in a subprocess."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from jupyter_guildimg import __version__
from jupyter_guildimg.cli import RunFilter, _parser
from jupyter_guildimg.engine.monitor import DEFAULT_INTERVAL, RunsMonitor
from jupyter_guildimg.engine.runs import Run
from jupyter_guildimg.guild.project import write_run

from helpers import jpeg, png, wait_for

COMMAND = [sys.executable, "-m", "jupyter_guildimg.cli"]
RESOURCES = Path(__file__).parent / "resources"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, GUILD_HOME=str(tmp_path / "guild-home"))


def guildimg(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A plain runs folder (not Guild) of two runs and three images."""
    runs = tmp_path / "runs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())
    (runs / "version_1").mkdir()
    (runs / "version_1" / "pred.png").write_bytes(png(colour="green"))
    (runs / "version_1" / "attn.jpg").write_bytes(jpeg())
    return runs


def images(logdir: Path, run: str) -> list[str]:
    path = logdir / run / ".images"
    return sorted(os.listdir(path)) if path.is_dir() else []


def test_demo_makes_runs_and_captures_their_images(tmp_path, env):
    result = guildimg(tmp_path, env, "demo", "--once", "--home", "H", "--runs", "1")

    assert result.returncode == 0, result.stderr
    assert "captured 3 image(s) from 1 run(s)" in result.stdout
    captured = sorted(
        line.rsplit("  ", 1)[1] for line in result.stdout.splitlines() if line.startswith("  ")
    )
    assert captured == ["plots/attention.jpg", "plots/confusion.png", "samples.png"]
    logdir = tmp_path / "logdir"
    assert f"Log dir: {logdir}" in result.stdout
    (run,) = os.listdir(logdir)
    assert len(images(logdir, run)) == 3


def test_monitor_once_over_a_plain_runs_folder(tmp_path, env, runs):
    result = guildimg(tmp_path, env, "monitor", str(runs), "--logdir", "D", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2 runs, 3 images, 3 written",
        f"Sources: {runs}",
        f"Log dir: {tmp_path / 'D'}",
    ]
    logdir = tmp_path / "D"
    assert sorted(os.listdir(logdir)) == ["version_0", "version_1"]
    assert len(images(logdir, "version_0")) == 1
    assert len(images(logdir, "version_1")) == 2


def test_a_log_dir_another_monitor_holds_is_a_one_line_error(tmp_path, env, runs):
    holder = RunsMonitor(tmp_path / "D", list, interval=1.0)
    holder.acquire_logdir()
    try:
        result = guildimg(tmp_path, env, "monitor", str(runs), "--logdir", "D", "--once")
    finally:
        holder.stop()

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("guildimg: ") and f"pid {os.getpid()}" in line and "in use" in line
    assert os.listdir(tmp_path / "D") == []


def test_a_missing_source_is_a_one_line_error(tmp_path, env):
    missing = tmp_path / "no such runs"

    result = guildimg(tmp_path, env, "monitor", str(missing), "--logdir", "D", "--once")

    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("guildimg: ") and str(missing) in line
    assert not (tmp_path / "D").exists()


def test_an_interval_below_half_a_second_is_refused(tmp_path, env, runs):
    result = guildimg(tmp_path, env, "monitor", str(runs), "--logdir", "D", "--interval", "0.1")

    assert result.returncode == 2
    assert "--interval" in result.stderr and "at least 0.5" in result.stderr
    assert not (tmp_path / "D").exists()


def test_the_interval_defaults_to_the_monitors():
    for command in (["monitor", "runs"], ["tensorboard"]):
        assert _parser().parse_args(command).interval == DEFAULT_INTERVAL


def test_without_sources_every_conventional_source_that_exists_is_watched(tmp_path, env, runs):
    # The Guild home (GUILD_HOME in env) holds 7 Guild runs; ./runs two plain runs;
    # ./lightning_logs one; ./outputs does not exist.
    shutil.copytree(RESOURCES / "guild-home", tmp_path / "guild-home", symlinks=True)
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)
    (tmp_path / "lightning_logs" / "version_0" / "grid.png").write_bytes(png())

    result = guildimg(tmp_path, env, "monitor", "--logdir", "D", "--once")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("10 runs, ")
    home, runs_dir, lightning = (
        str(tmp_path / "guild-home"),
        str(tmp_path / "runs"),
        str(tmp_path / "lightning_logs"),
    )
    assert lines[1] == f"Sources: {home}, {runs_dir}, {lightning}"
    assert lines[2] == f"Log dir: {tmp_path / 'D'}"
    names = os.listdir(tmp_path / "D")
    # Both folders have a version_0: one is named after its folder too, uniquely.
    assert sum("version_0" in name for name in names) == 2 and "version_1" in names


def test_monitor_once_says_where_it_wrote_and_removes_a_temporary_log_dir(tmp_path, env, runs):
    result = guildimg(tmp_path, env, "monitor", str(runs), "--once")

    assert result.returncode == 0, result.stderr
    summary, sources, where = result.stdout.splitlines()
    assert summary == "2 runs, 3 images, 3 written"
    assert sources == f"Sources: {runs}"
    assert where.startswith("Log dir: ") and "temporary, removed" in where
    logdir = where.removeprefix("Log dir: ").split(" (")[0]
    assert os.path.isabs(logdir) and not os.path.exists(logdir)


def start_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    """``guildimg ARGS`` in the background, its output a text pipe (read its lines)."""
    return subprocess.Popen(
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.tensorboard
def test_tensorboard_without_a_source_or_guild_home_watches_runs_until_it_appears(tmp_path, env):
    process = start_cli(tmp_path, env, "tensorboard")
    try:
        line = process.stdout.readline()  # printed once TensorBoard answers
        assert line.startswith("TensorBoard http://127.0.0.1:")
        assert line.rstrip().endswith(f"watching {tmp_path / 'runs'}")
        url = line.split()[1]
        (tmp_path / "runs" / "first").mkdir(parents=True)
        (tmp_path / "runs" / "first" / "grid.png").write_bytes(png())

        def shown():
            return "first/.images" in httpx.get(url + "data/runs", timeout=10).json()

        wait_for(shown, 30, "the run made after start-up, in TensorBoard")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        process.stdout.close()
    assert code == 0


def test_version_and_help_say_what_each_command_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"guildimg {__version__}"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and "every image your ML runs write" in top
    for command in ("demo", "monitor", "tensorboard"):
        assert command in top
        with pytest.raises(SystemExit):
            _parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        description = text.split("positional arguments")[0].split("options:")[0]
        assert len(description.split()) > 25, (command, description)  # a description in words
    assert "Without sources it watches the Guild home" in text  # tensorboard, last


def _default_sigint() -> None:
    # A process started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt: give the
    # command the Ctrl+C a user at a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_monitor_runs_until_interrupted(tmp_path, env, runs):
    logdir = tmp_path / "D"
    process = subprocess.Popen(
        [*COMMAND, "monitor", str(runs), "--logdir", str(logdir), "--interval", "0.5"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        wait_for(
            lambda: len(images(logdir, "version_0")) + len(images(logdir, "version_1")) == 3,
            30,
            "the monitor's summaries",
        )
        assert process.poll() is None

        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert "Ctrl+C stops" in stdout and "Stopping" in stdout


@pytest.mark.tensorboard
def test_tensorboard_serves_the_runs_until_interrupted_and_leaves_nothing(tmp_path, env, runs):
    process = start_cli(tmp_path, env, "tensorboard", str(runs))
    try:
        line = process.stdout.readline()  # printed once TensorBoard answers
        assert line.startswith("TensorBoard http://127.0.0.1:")
        url = line.split()[1]
        tensorboard_runs = httpx.get(url + "data/runs", timeout=10).json()
        assert {"version_0/.images", "version_1/.images"} <= set(tensorboard_runs)
        port = int(url.rsplit(":", 1)[1].strip("/"))
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        process.stdout.close()
    assert code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/data/runs", timeout=2)


def start_demo(tmp_path: Path, env: dict[str, str], port: int, *python: str) -> subprocess.Popen:
    """``guildimg demo`` on one run, in its own session as at a terminal; ``python``
    replaces the plain ``python -m jupyter_guildimg.cli`` start."""
    return subprocess.Popen(
        [*(python or COMMAND), "demo", "--home", "H", "--runs", "1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def demo_message(process: subprocess.Popen) -> str:
    """What the demo printed up to and including its last line before serving."""
    lines = []
    while not lines or "Ctrl+C stops" not in lines[-1]:
        line = process.stdout.readline()
        assert line, f"the demo ended early: {''.join(lines)}"
        lines.append(line)
    return "".join(lines)


def stop_demo(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGINT)  # Ctrl+C at the terminal
    code = process.wait(60)
    process.stdout.close()
    return code


@pytest.mark.tensorboard
def test_demo_serves_jupyterlab_with_the_extension_and_tensorboard(tmp_path, env):
    port = free_port()
    process = start_demo(tmp_path, env, port)
    try:
        message = demo_message(process)
        lab_url = f"http://127.0.0.1:{port}/lab?token="
        (lab_line,) = [line for line in message.splitlines() if lab_url in line]
        token = lab_line.split("token=")[1].strip()
        assert "Guild Images" in message and "Open TensorBoard" in message
        assert f"/guildimg/tensorboard/?token={token}" in message
        headers = {"Authorization": f"token {token}"}
        base = f"http://127.0.0.1:{port}/guildimg"

        def served():
            try:
                response = httpx.get(f"{base}/tensorboard/data/runs", headers=headers)
            except httpx.TransportError:
                return None
            return response.status_code == 200 and response.json()

        assert any(run.endswith("/.images") for run in wait_for(served, 120, "TensorBoard"))
        lab = httpx.get(lab_line.strip(), timeout=30)
        assert lab.status_code == 200
        assert "jupyter-config-data" in lab.text  # JupyterLab's page, not a login form
        # Started as JupyterLab, not a bare server that happens to have it: the
        # server's front page is JupyterLab.
        front = httpx.get(f"http://127.0.0.1:{port}/", headers=headers)
        assert front.status_code == 302
        assert httpx.URL(front.headers["location"]).path == "/lab"
        runs = httpx.get(f"{base}/api/runs", headers=headers).json()["runs"]
        # The demo run, and the live one still training (it runs for minutes).
        live = [run for run in runs if run["label"] == "live"]
        assert [run["image_count"] for run in runs if run not in live] == [3]
        assert len(live) == 1 and live[0]["status"] == "running"
        # No news prompt: the demo's Lab defaults answer it.
        notification = httpx.get(
            f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification",
            headers=headers,
        ).json()
        assert notification["schema"]["properties"]["fetchNews"]["default"] == "false"
        status = httpx.get(f"{base}/api/status", headers=headers).json()
        tensorboard_pid = status["tensorboard"]["pid"]
    finally:
        code = stop_demo(process)
    assert code == 0
    with pytest.raises(ProcessLookupError):
        os.kill(tensorboard_pid, 0)
    config = (tmp_path / "jupyter_guildimg_demo_config.py").read_text()
    assert "c.LabApp.news_url = None" in config  # no network: no news, no update check
    assert "NeverCheckForUpdate" in config


@pytest.mark.tensorboard
def test_demo_without_jupyterlab_serves_plain_jupyter_and_says_how_to_get_it(tmp_path, env):
    port = free_port()
    # A None entry in sys.modules is what find_spec reports as not installed.
    hide_lab = (
        "import sys; sys.modules['jupyterlab'] = None; "
        "from jupyter_guildimg.cli import main; sys.exit(main())"
    )
    process = start_demo(tmp_path, env, port, sys.executable, "-c", hide_lab)
    try:
        message = demo_message(process)
        assert "JupyterLab is not installed" in message
        assert "pip install 'jupyter_guildimg[lab]'" in message
        assert "/lab?token=" not in message
        lines = [line.split() for line in message.splitlines()]
        (jupyter_url,) = [words[1] for words in lines if words[:1] == ["Jupyter"]]
        token = jupyter_url.split("token=")[1]
        api = f"http://127.0.0.1:{port}/guildimg/api/status"

        def answered():
            try:
                response = httpx.get(api, headers={"Authorization": f"token {token}"})
            except httpx.TransportError:
                return None
            return response.status_code == 200 and response.json()

        assert wait_for(answered, 120, "the server extension")["monitor"]["sources"]
        # A bare Jupyter server: its front page is not JupyterLab.
        front = httpx.get(f"http://127.0.0.1:{port}/", headers={"Authorization": f"token {token}"})
        assert front.status_code == 200
    finally:
        code = stop_demo(process)
    assert code == 0
    config = (tmp_path / "jupyter_guildimg_demo_config.py").read_text()
    assert "LabApp" not in config


def run_filter(*args: str) -> RunFilter | None:
    return RunFilter.of(_parser().parse_args(["tensorboard", *args]))


RUNS = [
    Run("3f2a9c1b" + "0" * 24, "/h/runs/a", "mnist:train", "lr=0.1 big", "completed", 1000.0),
    Run("3f2b0000" + "0" * 24, "/h/runs/b", "mnist:eval", "", "running", 2000.0),
    Run("71d00000" + "0" * 24, "/h/runs/c", "prepare", "LR=0.2", "error", None),
    Run("version_0", "/r/version_0", kind="dir", status="completed", started=3000.0),
]


def kept(found: RunFilter | None) -> list[str]:
    assert found is not None
    return [run.id[:4] for run in RUNS if found(run)]


def test_tensorboard_filters_keep_runs_as_guilds_do():
    assert run_filter() is None  # no filter: every run, up to --max-runs
    assert kept(run_filter("-o", "TRAIN")) == ["3f2a"]  # ignoring case
    assert kept(run_filter("-o", "train", "--operation", "prep")) == ["3f2a", "71d0"]
    assert kept(run_filter("-l", "lr=0.")) == ["3f2a", "71d0"]
    assert kept(run_filter("--status", "running", "--status", "error")) == ["3f2b", "71d0"]
    assert kept(run_filter("--run", "3f2")) == ["3f2a", "3f2b"]  # a prefix
    assert kept(run_filter("--run", "3f2a", "--run", "version_0")) == ["3f2a", "vers"]
    assert kept(run_filter("--run", "3")) == []  # too short for a prefix
    # Every kind given must keep a run.
    assert kept(run_filter("-o", "mnist", "--status", "running")) == ["3f2b"]
    assert kept(run_filter("-l", "lr", "--run", "71d")) == ["71d0"]


def test_started_since_takes_an_age_or_a_date(capsys):
    before = time.time()
    since = run_filter("--started-since", "2h")
    assert since is not None and since.started_since is not None
    assert before - 7200 - 5 < since.started_since <= time.time() - 7200
    for text, seconds in [("30m", 1800), ("90s", 90), ("1d", 86400), ("1w", 7 * 86400)]:
        found = run_filter("--started-since", text)
        assert found is not None and found.started_since is not None
        assert abs(time.time() - seconds - found.started_since) < 5, text
    day = run_filter("--started-since", "2026-12-01")
    assert day is not None and day.started_since == datetime(2026, 12, 1).timestamp()
    assert kept(RunFilter(started_since=1500.0)) == ["3f2b", "vers"]  # unknown: not kept
    with pytest.raises(SystemExit):
        run_filter("--started-since", "soon")
    assert "expected an age such as 30m, 1h, 2d or 1w, or an ISO date" in capsys.readouterr().err


def test_max_runs_is_a_number_of_runs(capsys):
    assert _parser().parse_args(["tensorboard"]).max_runs == 200
    assert _parser().parse_args(["tensorboard", "--max-runs", "0"]).max_runs == 0
    with pytest.raises(SystemExit):
        _parser().parse_args(["tensorboard", "--max-runs", "-1"])
    assert "must be 0 (every run) or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["tensorboard", "--status", "done"])


@pytest.mark.tensorboard
def test_tensorboard_shows_only_the_runs_the_filters_keep(tmp_path, env, runs):
    process = subprocess.Popen(
        [*COMMAND, "tensorboard", str(runs), "--run", "version_1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[1]
        assert process.stdout.readline().startswith("It shows 1 of 1 runs the filters keep")
        tensorboard_runs = httpx.get(url + "data/runs", timeout=10).json()
        assert [run for run in tensorboard_runs if run.endswith("/.images")] == [
            "version_1/.images"
        ]
        # A new run the filters keep comes in; one they do not stays out.
        (runs / "version_10").mkdir()
        (runs / "version_10" / "pred.png").write_bytes(png())
        (runs / "other").mkdir()
        (runs / "other" / "pred.png").write_bytes(png())

        def images_runs():
            listed = httpx.get(url + "data/runs", timeout=10).json()
            return sorted(run for run in listed if run.endswith("/.images"))

        wait_for(lambda: len(images_runs()) == 2, 30, "the new run in TensorBoard")
        assert images_runs() == ["version_1/.images", "version_10/.images"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        process.stdout.close()
    assert code == 0


@pytest.mark.tensorboard
def test_tensorboard_says_once_that_it_may_not_open_enough_files(tmp_path, env):
    """Under a hard limit of 512 open files, runs needing more event files than that:
    the terminal is told once, with the fix, as the server's TensorBoard tab is."""
    home = tmp_path / "guild-home"
    for number in range(6):  # 540 event files (a run summarizes at most 100 images)
        files = {f"{number}/{i:03}.png": png() for i in range(90)}
        write_run(home, op="train", label=f"run {number}", files=files)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    process = subprocess.Popen(
        [*COMMAND, "tensorboard", str(home)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=low_limit,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()

    def warnings() -> list[str]:
        return [line for line in list(lines) if "TensorBoard needs about" in line]

    try:
        wait_for(warnings, 120, "the open-files warning")
        time.sleep(5)  # two more looks at TensorBoard's warnings
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(10)
        process.stderr.close()
    assert process.returncode == 0
    (warning,) = warnings()  # said once
    assert warning.startswith("guildimg: warning: TensorBoard needs about")
    assert "may open only 512" in warning and "ulimit -Hn" in warning
