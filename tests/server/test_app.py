"""The server extension's settings and lifecycle, on real servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from traitlets import TraitError

from jupyter_guildimg.engine.monitor import DEFAULT_INTERVAL, RunsMonitor
from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.server.app import GuildImgApp

from helpers import (
    monitor_status,
    png,
    process_running,
    run_pass,
    start_jupyter_server,
    until,
    wait_for,
)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_extension_is_enabled_by_installing_the_package():
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    output = listing.stdout + listing.stderr
    assert "jupyter_guildimg" in output and "enabled" in output
    assert "jupyter_guildimg 0." in output and "OK" in output


@pytest.fixture
def jp_server_config(jp_root_dir):
    (jp_root_dir / "my-runs" / "version_0").mkdir(parents=True)
    (jp_root_dir / "my-runs" / "version_0" / "a.txt").write_text("x")
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
        "GuildImgApp": {"sources": ["my-runs", "dir:later"], "interval": 0.5},
    }


async def test_relative_sources_resolve_against_the_root_dir(guildimg, jp_root_dir):
    status = await monitor_status(guildimg)
    assert status["sources"] == [str(jp_root_dir / "my-runs"), str(jp_root_dir / "later")]
    assert Path(status["logdir"]).is_dir()
    assert status["running"]


def test_an_interval_below_half_a_second_is_refused():
    with pytest.raises(TraitError, match=r"at least 0\.5"):
        GuildImgApp(interval=0.2)


def test_the_interval_defaults_to_the_monitors():
    assert GuildImgApp().interval == DEFAULT_INTERVAL


async def test_the_change_feed_reports_the_monitors_own_generation(guildimg, jp_root_dir):
    feed = guildimg.changes
    await run_pass(guildimg)  # the monitor has counted the runs there are
    since = (await monitor_status(guildimg))["generation"]
    assert feed.generation == since
    waiting = asyncio.ensure_future(feed.wait(since, 20))
    (jp_root_dir / "my-runs" / "version_1").mkdir()
    (jp_root_dir / "my-runs" / "version_1" / "a.png").write_bytes(png())

    generation = await asyncio.wait_for(waiting, 15)  # woken by the monitor's pass
    assert since < generation <= (await monitor_status(guildimg))["generation"]


async def test_a_wake_left_from_an_earlier_change_does_not_end_a_long_poll(guildimg, jp_root_dir):
    feed = guildimg.changes

    async def first_pass_done() -> int:
        return int((await monitor_status(guildimg))["passes"])

    await until(first_pass_done, 15, "the first pass")
    await feed.wait(-1, 0)  # the feed now knows the server's loop
    since = feed.generation
    waiting = asyncio.ensure_future(feed.wait(since, 20))
    await asyncio.sleep(0)  # the poll is waiting
    feed.announce()  # a wake for a change ``since`` already counts
    await asyncio.sleep(0.1)
    assert not waiting.done()  # still waiting for a change past ``since``
    (jp_root_dir / "my-runs" / "version_2").mkdir()
    (jp_root_dir / "my-runs" / "version_2" / "a.png").write_bytes(png())
    assert await asyncio.wait_for(waiting, 10) > since


async def test_stopping_the_server_stops_tensorboard_and_the_monitor(jp_serverapp, guildimg):
    result = await guildimg.tensorboard.start()
    assert result.outcome == "started"
    pid = guildimg.tensorboard.pid
    logdir = guildimg.logdir_path

    view_dir = guildimg.view_dir
    monitor_pid = guildimg.runtime.monitor.pid
    assert process_running(monitor_pid)

    await jp_serverapp._cleanup()

    assert not process_running(pid)
    assert not process_running(monitor_pid)
    assert not os.path.exists(logdir)  # a temporary log dir goes with the server, at once
    assert not os.path.exists(view_dir)  # and so does the view TensorBoard read
    # and their contents after, in the background
    for removing in (logdir + ".removing", view_dir + ".removing"):
        wait_for(lambda: not os.path.exists(removing), 30, f"{removing!r} to go")  # noqa: B023


async def test_a_killed_tensorboard_comes_back(guildimg):
    await guildimg.tensorboard.start()
    first = guildimg.tensorboard.pid
    os.killpg(first, signal.SIGKILL)

    def back():
        return guildimg.tensorboard.status == "ready" and guildimg.tensorboard.pid != first

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not back():
        await __import__("asyncio").sleep(0.25)
    assert back()
    assert guildimg.tensorboard.restarts == 1


@pytest.mark.tensorboard
async def test_a_server_killed_with_sigkill_leaves_an_orphan_the_next_start_removes(
    jp_runtime_dir, jp_configurable_serverapp, tmp_path, guild_home
):
    config = (
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{str(guild_home)!r}]\n"
        "c.GuildImgApp.tensorboard_autostart = True\n"
    )
    server = start_jupyter_server(tmp_path, config, jp_runtime_dir, start_new_session=True)
    try:

        def record():
            names = [n for n in os.listdir(jp_runtime_dir) if n.startswith("jupyter_guildimg-")]
            return names[0] if names else None

        name = wait_for(record, 90, "the TensorBoard pid record")
        written = json.loads((jp_runtime_dir / name).read_text())
        orphan = written["pid"]
        # Killed while it starts, TensorBoard's next line to its stderr (a pipe to the
        # server) fails and ends it: the orphan this test is about is one that runs.
        wait_for(lambda: listening(written["port"]), 90, "TensorBoard listening")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        assert process_running(orphan)  # it outlived its server: an orphan

        app = jp_configurable_serverapp()  # a new server on the same runtime dir

        assert not process_running(orphan)
        assert not (jp_runtime_dir / name).exists()
        await app._cleanup()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


async def test_kernels_inherit_where_the_api_is_but_never_the_token(
    jp_serverapp, guildimg, jp_http_port, jp_base_url
):
    token = jp_serverapp.identity_provider.token
    assert os.environ["JUPYTER_GUILDIMG_URL"] == f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    assert os.environ["JUPYTER_GUILDIMG_SERVER_PID"] == str(os.getpid())
    assert os.environ["JUPYTER_GUILDIMG_SERVER_INFO"] == jp_serverapp.info_file
    assert token not in os.environ.values()

    kernels = jp_serverapp.kernel_manager
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    try:
        pid = kernels.get_kernel(kernel_id).provisioner.process.pid
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        await kernels.shutdown_kernel(kernel_id, now=True)
    assert token.encode() not in environ
    assert f"JUPYTER_GUILDIMG_URL=http://127.0.0.1:{jp_http_port}".encode() in environ

    await jp_serverapp._cleanup()

    assert "JUPYTER_GUILDIMG_URL" not in os.environ
    assert "JUPYTER_GUILDIMG_SERVER_PID" not in os.environ


class TestConfiguredSourcesAroundTheLogDir:
    @pytest.fixture
    def jp_server_config(self, jp_root_dir, tmp_path):
        outer = tmp_path / "outer"
        (outer / "logdir").mkdir(parents=True)
        (jp_root_dir / "my-runs" / "version_0").mkdir(parents=True)
        (jp_root_dir / "my-runs" / "version_0" / "a.png").write_bytes(png())
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {
                "sources": [str(outer), "my-runs", str(outer / "logdir" / "inside")],
                "logdir": str(outer / "logdir"),
                "interval": 0.5,
            },
        }

    async def test_one_that_holds_the_log_dir_or_lies_in_it_is_refused_the_others_work(
        self, guildimg, jp_root_dir, tmp_path
    ):
        status = await monitor_status(guildimg)
        assert status["sources"] == [str(jp_root_dir / "my-runs")]
        refused = {item["path"]: item["message"] for item in status["refused_sources"]}
        assert "contains the monitor's log dir" in refused[str(tmp_path / "outer")]
        assert "lies inside the monitor's log dir" in refused[str(tmp_path / "outer/logdir/inside")]
        assert status["error"] is None

        async def captured():
            await run_pass(guildimg)
            runs = json.loads(await guildimg.call("runs_body", None, None))["runs"]
            return [(run["run_id"], run["image_count"]) for run in runs]

        deadline = time.monotonic() + 30
        while await captured() != [("version_0", 1)] and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        assert await captured() == [("version_0", 1)]


class TestALogDirHeldByAnotherMonitor:
    @pytest.fixture
    def other(self, tmp_path):
        monitor = RunsMonitor(tmp_path / "shared-logdir", list, interval=1.0)
        monitor.acquire_logdir()
        yield monitor
        monitor.stop()

    @pytest.fixture
    def jp_server_config(self, guild_home, other):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home)], "logdir": other.logdir},
        }

    async def test_the_server_starts_with_capture_off_and_says_why(
        self, jp_fetch, guildimg, guild_home
    ):
        write_run(guild_home, op="train", files={"a.png": png()})
        status = json.loads((await jp_fetch("guildimg", "api", "status")).body)["monitor"]
        assert not status["running"]
        assert f"pid {os.getpid()}" in status["error"] and "in use" in status["error"]
        refresh = await jp_fetch(
            "guildimg", "api", "refresh", method="POST", body="", raise_error=False
        )
        assert refresh.code == 409 and "capture is off" in json.loads(refresh.body)["message"]
        await asyncio.sleep(1.2)  # a pass would have come by now
        assert os.listdir(guildimg.logdir_path) == []  # nothing written into the other's dir
        runs = json.loads((await jp_fetch("guildimg", "api", "runs")).body)["runs"]
        assert runs == []


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def make_temp_logdir(age: float, suffix: str = "", owner: int | str = "test") -> Path:
    """A temporary log dir as a server names it (``guildimg-logdir-<owner pid>-…``)."""
    path = Path(tempfile.mkdtemp(prefix=f"guildimg-logdir-{owner}-"))
    (path / "run").mkdir()
    (path / "run" / "events.out.tfevents.0000000000.time").write_bytes(b"x")
    (path / "run" / "link").symlink_to(path.parent)  # removed, never followed
    if suffix:
        path = path.rename(str(path) + suffix)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


class TestStaleTemporaryLogDirs:
    @pytest.fixture
    def left(self, tmp_path):
        """Log dirs as dead servers leave them, and two a server must not touch."""
        held = make_temp_logdir(3600)
        holder = RunsMonitor(held, list, interval=1.0)
        holder.acquire_logdir()  # a live server's
        target = tmp_path / "not-a-log-dir"
        target.mkdir()
        (target / "keep.txt").write_text("x")
        planted = Path(tempfile.gettempdir(), f"guildimg-logdir-test-link-{os.getpid()}")
        planted.symlink_to(target)
        dirs = {
            "stale": make_temp_logdir(3600),
            "dead owner": make_temp_logdir(0, owner=dead_pid()),
            "removing": make_temp_logdir(3600, ".removing"),
            "young": make_temp_logdir(0),  # maybe about to be locked by its monitor
            "live owner": make_temp_logdir(3600, owner=os.getpid()),  # not locked (yet)
            "held": held,
            "planted": planted,
            "target": target,
        }
        yield dirs
        holder.stop()
        planted.unlink()
        for name in ("stale", "dead owner", "removing", "young", "live owner", "held"):
            subprocess.run(["rm", "-rf", str(dirs[name])], check=True)

    @pytest.fixture
    def jp_server_config(self, jp_server_config, left):
        return jp_server_config

    async def test_are_removed_when_a_server_starts(self, guildimg, left):
        def cleaned():
            return not any(left[name].exists() for name in ("stale", "dead owner", "removing"))

        wait_for(cleaned, 30, "the stale log dirs' removal")
        assert not Path(str(left["stale"]) + ".removing").exists()
        assert left["held"].is_dir() and left["young"].is_dir() and left["live owner"].is_dir()
        assert left["planted"].is_symlink() and (left["target"] / "keep.txt").exists()
        assert Path(guildimg.logdir_path).is_dir()


class TestRevisionCap:
    @pytest.fixture
    def jp_server_config(self, guild_home):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home)], "max_revisions_per_image": 3},
        }

    async def test_is_the_monitors(self, guildimg, guild_home):
        assert guildimg.max_revisions_per_image == 3
        run_dir = write_run(guild_home, op="train", files={"a.png": png()})
        for colour in ("red", "green", "blue", "white", "black"):
            Path(run_dir, "a.png").write_bytes(png(colour=colour))
            await run_pass(guildimg)
        (image,) = (await guildimg.call("images", Path(run_dir).name))["images"]
        assert len(image["revisions"]) == 3 and image["dropped"] == 2


class TestTheViewTensorBoardReads:
    @pytest.fixture
    def jp_server_config(self, guild_home):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"sources": [str(guild_home)], "tensorboard_max_runs": 2},
        }

    async def test_is_a_sibling_of_the_log_dir_holding_the_newest_runs(self, guildimg, guild_home):
        assert guildimg.tensorboard_max_runs == 2
        assert (await guildimg.call("selection"))["limit"] == 2
        view_dir, logdir = Path(guildimg.view_dir), Path(guildimg.logdir_path)
        assert view_dir.parent == logdir.parent and view_dir.is_dir()
        assert view_dir.name.startswith(f"guildimg-logdir-{os.getpid()}-view-")
        # TensorBoard reads the view (and its pid record names it).
        assert guildimg.tensorboard.logdir == str(view_dir)

        runs = [
            write_run(guild_home, op="train", started=t, files={"a.png": png()}) for t in (1, 2, 3)
        ]
        await run_pass(guildimg)
        # The log dir holds every run, the view the two newest.
        assert len(list(logdir.iterdir())) == 3
        linked = sorted(path.name[:8] for path in view_dir.iterdir() if path.is_symlink())
        assert linked == sorted(Path(run_dir).name[:8] for run_dir in runs[1:])


def test_max_runs_must_not_be_negative():
    with pytest.raises(TraitError, match="tensorboard_max_runs must be >= 0"):
        GuildImgApp(tensorboard_max_runs=-1)
    assert GuildImgApp().tensorboard_max_runs == 200


class TestFileSystemEvents:
    """With an hour between passes of either kind, only file-system events can
    bring a new image or a new run to the API."""

    @pytest.fixture
    def jp_server_config(self, guild_home):
        (guild_home / "runs").mkdir()  # a root that exists is watched (else polled)
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {
                "sources": [str(guild_home)],
                "interval": 3600.0,
                "reconcile_interval": 3600.0,
            },
        }

    async def test_an_image_and_a_run_reach_the_change_feed_without_a_pass(
        self, jp_fetch, guildimg, guild_home
    ):
        # The first pass (at start) found an empty home; events bring the run.
        async def first_pass() -> bool:
            return bool((await monitor_status(guildimg))["passes"] >= 1)

        await until(first_pass, 30, "the first pass")
        run_dir = write_run(guild_home, op="train", exit_status=None, files={"a.png": png()})

        async def images() -> list[str]:
            key = Path(run_dir).name
            response = await jp_fetch("guildimg", "api", "runs", key, "images", raise_error=False)
            if response.code != 200:
                return []
            return [image["path"] for image in json.loads(response.body)["images"]]

        for _ in range(150):  # bounded: 15 s
            if await images() == ["a.png"]:
                break
            await asyncio.sleep(0.1)
        assert await images() == ["a.png"]

        generation = (await monitor_status(guildimg))["generation"]
        Path(run_dir, "b.png").write_bytes(png(colour="blue"))
        for _ in range(150):
            if "b.png" in await images():
                break
            await asyncio.sleep(0.1)
        assert sorted(await images()) == ["a.png", "b.png"]
        assert (await monitor_status(guildimg))["generation"] > generation

        watch = (await monitor_status(guildimg))["watch"]
        assert watch is not None and watch["reconcile_interval"] == 3600.0
        (source,) = watch["sources"]
        assert source["mode"] == "events" and source["reason"] == ""
        assert source["path"] == str(guild_home / "runs")
        assert watch["watches"] >= 1
