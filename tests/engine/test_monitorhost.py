"""The monitor host, spoken to as its server does: a real child process, its stdin
and stdout, a real Guild home."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from jupyter_guildimg.engine.monitorhost import host_environment, read_message, write_message
from jupyter_guildimg.engine.service import ServiceSettings
from jupyter_guildimg.guild.project import write_run

from helpers import png, process_running, wait_for


@pytest.fixture
def host(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", "import jupyter_guildimg.engine.monitorhost as m; m.child_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host_environment(tempfile.gettempdir()),
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(10)
    for stream in (process.stdin, process.stdout, process.stderr):
        stream.close()


def settings(home: Path, tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(
        sources=[str(home)],
        root_dir=str(tmp_path),
        logdir=str(tmp_path / "logdir"),
        view_dir=str(tmp_path / "view"),
        interval=3600.0,  # passes only when asked: the test counts them
        watch_files=False,
        index_process=False,
    )


def ready(process: subprocess.Popen) -> bool:
    """Whether it says it is ready, past its first log lines."""
    while (message := read_message(process.stdout)) is not None:
        if message[0] != "log":
            return message == ("ready",)
    return False


def answer(process: subprocess.Popen, call_id: int, before: list | None = None) -> tuple:
    """The answer to call ``call_id``; the messages before it go to ``before``."""
    while (message := read_message(process.stdout)) is not None:
        if message[0] in ("result", "error") and message[1] == call_id:
            return message
        if before is not None:
            before.append(message)
    raise AssertionError(f"the host ended before answering call {call_id}")


def test_answers_calls_says_what_changed_and_stops_when_asked(host, guild_home, tmp_path):
    write_message(host.stdin, ("start", settings(guild_home, tmp_path), 30))
    assert ready(host)
    call_id = 100
    while True:  # its first pass (an empty home), then a run for the pass asked below
        call_id += 1
        write_message(host.stdin, ("call", call_id, "status", ()))
        if answer(host, call_id)[2]["passes"] >= 1:
            break
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})

    write_message(host.stdin, ("call", 1, "run_pass", ()))
    before: list[tuple] = []
    _kind, _id, report = answer(host, 1, before)
    # Its change is heard before its answer: a client woken by it reads the pass's runs.
    assert [message[1] >= 1 for message in before if message[0] == "changed"] == [True]
    (written,) = report["written"]
    assert written["path"] == "a.png" and written["run"].startswith(Path(run_dir).name[:8])

    write_message(host.stdin, ("call", 2, "images", (Path(run_dir).name,)))
    (image,) = answer(host, 2)[2]["images"]
    assert image["path"] == "a.png"
    # A bad request crosses as its class's name and its message, for the user.
    write_message(host.stdin, ("call", 3, "run", ("no-such-run",)))
    assert answer(host, 3)[:3] == ("error", 3, "NotFoundError")
    # Only the service's calls: nothing else of it, nor of the process.
    write_message(host.stdin, ("call", 4, "close", (0,)))
    assert answer(host, 4)[:3] == ("error", 4, "LookupError")
    write_message(host.stdin, ("call", 5, "status", ()))
    assert answer(host, 5)[2]["running"]

    write_message(host.stdin, ("stop", 3.0))
    assert read_message(host.stdout) == ("stopped", True)
    assert host.wait(10) == 0
    assert Path(tmp_path / "logdir").is_dir()  # what it wrote stays


def test_ends_when_its_server_goes_away(host, guild_home, tmp_path):
    write_message(host.stdin, ("start", settings(guild_home, tmp_path), 30))
    assert ready(host)
    host.stdin.close()  # as when the server's process ends, however abruptly
    wait_for(lambda: not process_running(host.pid) or host.poll() is not None, 30, "the end")
    assert host.wait(10) == 0
