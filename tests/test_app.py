"""The server extension's settings and lifecycle, on real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traitlets import TraitError

from jupyter_guildimg.app import GuildImgApp

from helpers import process_running, wait_for


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
    status = guildimg.status()["monitor"]
    assert status["sources"] == [str(jp_root_dir / "my-runs"), str(jp_root_dir / "later")]
    assert Path(status["logdir"]).is_dir()
    assert guildimg.monitor.running


def test_an_interval_below_half_a_second_is_refused():
    with pytest.raises(TraitError, match=r"at least 0\.5"):
        GuildImgApp(interval=0.2)


async def test_stopping_the_server_stops_tensorboard_and_the_monitor(jp_serverapp, guildimg):
    result = await guildimg.tensorboard.start()
    assert result.outcome == "started"
    pid = guildimg.tensorboard.pid
    logdir = guildimg.logdir_path

    await jp_serverapp._cleanup()

    assert not process_running(pid)
    assert not guildimg.monitor.running
    assert not os.path.exists(logdir)  # a temporary log dir goes with the server


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
    config = tmp_path / "orphan_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{str(guild_home)!r}]\n"
        "c.GuildImgApp.tensorboard_autostart = True\n"
    )
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(jp_runtime_dir))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--port",
            "0",
            f"--config={config}",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def record():
            names = [n for n in os.listdir(jp_runtime_dir) if n.startswith("jupyter_guildimg-")]
            return names[0] if names else None

        name = wait_for(record, 90, "the TensorBoard pid record")
        orphan = json.loads((jp_runtime_dir / name).read_text())["pid"]
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


async def test_kernels_inherit_where_the_api_is_and_how_to_authenticate(
    jp_serverapp, guildimg, jp_http_port, jp_base_url
):
    assert os.environ["JUPYTER_GUILDIMG_URL"] == f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    assert os.environ["JUPYTER_GUILDIMG_TOKEN"] == jp_serverapp.identity_provider.token

    await jp_serverapp._cleanup()

    assert "JUPYTER_GUILDIMG_URL" not in os.environ
    assert "JUPYTER_GUILDIMG_TOKEN" not in os.environ
