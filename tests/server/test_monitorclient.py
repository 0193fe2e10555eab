"""The monitor in a process of its own: the server's default. Real servers, real
processes: the API answers through it, it comes back when it dies and loses
nothing, its lines reach the server's log, it holds no token, and it never
outlives its server."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.server import monitorclient

from helpers import monitor_status, png, process_running, start_jupyter_server, until, wait_for


def host_pid(guildimg) -> int:
    pid = guildimg.runtime.monitor.pid
    assert pid is not None
    return pid


async def runs_listed(jp_fetch) -> list[tuple[str, int]]:
    response = await jp_fetch("guildimg", "api", "runs")
    return [(run["run_id"], run["image_count"]) for run in json.loads(response.body)["runs"]]


async def test_the_api_answers_from_a_process_that_is_not_the_servers(
    jp_fetch, guildimg, guild_home
):
    pid = host_pid(guildimg)
    assert pid != os.getpid() and process_running(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"jupyter_guildimg.engine.monitorhost" in f.read()
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
    assert await runs_listed(jp_fetch) == [(Path(run_dir).name, 1)]
    # None of the monitor's threads runs in the server: they would share its lock.
    names = {thread.name for thread in threading.enumerate()}
    assert not any(name.startswith(("guildimg-monitor", "guildimg-fswatch")) for name in names)


async def test_a_killed_monitor_process_comes_back_and_nothing_is_lost(
    jp_fetch, guildimg, guild_home, tmp_path, monkeypatch
):
    # Long enough to see the API while it is down; a user's first wait is 1 s.
    monkeypatch.setattr(monitorclient, "_FIRST_RESTART_DELAY", 3.0)
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
    before = await runs_listed(jp_fetch)
    assert before == [(Path(run_dir).name, 1)]
    generation = guildimg.changes.generation
    pid = host_pid(guildimg)
    added = tmp_path / "more-runs"  # a source added by a user
    (added / "version_0").mkdir(parents=True)
    (added / "version_0" / "b.png").write_bytes(png())
    await jp_fetch(
        "guildimg", "api", "sources", method="POST", body=json.dumps({"path": str(added)})
    )

    os.kill(pid, signal.SIGKILL)

    def said_why() -> str:
        return guildimg.runtime.monitor.error

    wait_for(said_why, 10, "the server to see its monitor end")
    response = await jp_fetch("guildimg", "api", "runs", raise_error=False)
    assert response.code == 503
    assert "killed by SIGKILL" in json.loads(response.body)["message"]
    status = await monitor_status(guildimg)
    assert not status["running"] and "(killed by SIGKILL); restarting" in status["error"]
    assert status["sources"] == [str(guild_home), str(added)]  # the last known, otherwise

    async def back() -> bool:
        status = await monitor_status(guildimg)
        return status["running"] and status["error"] is None and status["passes"] > 0

    await until(back, 30, "the monitor's process to come back")
    assert host_pid(guildimg) != pid
    status = await monitor_status(guildimg)
    assert status["sources"] == [str(guild_home), str(added)]  # the added one too

    async def both_sources_listed() -> bool:
        return len(await runs_listed(jp_fetch)) == 2

    await until(both_sources_listed, 30, "the runs of both sources")
    assert before[0] in await runs_listed(jp_fetch)  # the log dir it left is taken up
    # Long polls waiting on the old process's numbers end: the count went on up.
    assert guildimg.changes.generation > generation
    Path(run_dir, "b.png").write_bytes(png(colour="blue"))

    async def both_images() -> bool:
        return (Path(run_dir).name, 2) in await runs_listed(jp_fetch)

    await until(both_images, 30, "the new process to capture a new image")


class TestItsLog:
    @pytest.fixture
    def jp_server_config(self, guild_home, tmp_path):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home), str(tmp_path / "not-yet")]},
        }

    async def test_goes_to_the_servers_log(self, guildimg, caplog, monkeypatch):
        # A module's warning, as if the monitor ran in the server (made at its start).
        async def warned() -> list[logging.LogRecord]:
            records = caplog.get_records("setup") + caplog.records
            return [r for r in records if r.name == "jupyter_guildimg.engine.service"]

        (warning,) = await until(warned, 30, "the monitor's warning")
        assert warning.levelno == logging.WARNING and "does not exist (yet)" in warning.msg
        # The lines the server's own log shows: how sources are followed, said by each
        # monitor process after its first pass (here, one started again).
        monkeypatch.setattr(monitorclient, "_FIRST_RESTART_DELAY", 0.1)
        said: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
        guildimg.log.addHandler(handler)
        try:
            os.kill(host_pid(guildimg), signal.SIGKILL)

            async def said_how() -> bool:
                return sum("followed by" in line for line in said) == 2

            await until(said_how, 30, "the lines saying how the sources are followed")
        finally:
            guildimg.log.removeHandler(handler)
        assert any("watching" in line and "into" in line for line in said)


class TestEnvironment:
    @pytest.fixture
    def jp_server_config(self, guild_home, monkeypatch):
        monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-token")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "an-object-store-key")
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home)]},
        }

    async def test_holds_the_object_stores_credentials_but_no_token(self, jp_serverapp, guildimg):
        with open(f"/proc/{host_pid(guildimg)}/environ", "rb") as f:
            environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        assert b"MY_SERVICE_TOKEN" not in environ
        token = jp_serverapp.identity_provider.token.encode()
        assert not any(token in value for value in environ.values())
        # Listing and fetching s3:// sources is the monitor's job.
        assert environ[b"AWS_SECRET_ACCESS_KEY"] == b"an-object-store-key"


class TestNoProcessCanStart:
    @pytest.fixture
    def jp_server_config(self, guild_home, monkeypatch):
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # for this server only
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home)]},
        }

    async def test_the_monitor_runs_in_the_servers_threads_and_says_so(
        self, jp_fetch, guildimg, guild_home, caplog
    ):
        assert isinstance(guildimg.runtime.monitor, monitorclient.LocalMonitor)
        lines = [record.getMessage() for record in caplog.get_records("setup")]
        (said,) = [line for line in lines if "server's own process" in line]
        assert "cannot start '/nonexistent/python'" in said
        run_dir = write_run(guild_home, op="train", files={"a.png": png()})
        await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
        assert await runs_listed(jp_fetch) == [(Path(run_dir).name, 1)]


def monitor_children(pid: int) -> list[int]:
    """The monitor processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if parent == pid and b"engine.monitorhost" in cmdline:
            found.append(int(entry))
    return found


def test_the_monitor_process_ends_when_its_server_is_killed(tmp_path, guild_home):
    config = (
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{str(guild_home)!r}]\n"
    )
    server = start_jupyter_server(tmp_path, config, tmp_path / "runtime")
    try:
        (host,) = wait_for(lambda: monitor_children(server.pid), 60, "the monitor's process")
        server.kill()  # SIGKILL: the server cleans nothing up
        server.wait(10)
        # Its stdin, a pipe from the server, ends: it stops and exits.
        wait_for(lambda: not process_running(host), 30, "the monitor's process to end")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
