"""How a kernel reaches the monitor: the server extension over its REST API (a real
server per test), or a monitor and TensorBoard of its own."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.notebook.client import (
    ENV_SERVER_INFO,
    ENV_SERVER_PID,
    ENV_TOKEN,
    ENV_URL,
    BackendError,
    LocalBackend,
    ServerBackend,
    _own_servers,
    close_shared_backend,
    connect,
    shared_backend,
)

from helpers import png, process_running, wait_for

pytestmark = pytest.mark.usefixtures("no_servers")


@pytest.fixture
def server_url(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def server(server_url, jp_serverapp):
    backend = ServerBackend(server_url, jp_serverapp.identity_provider.token)
    yield backend
    backend.close()


@pytest.fixture
def local(guild_home, tmp_path):
    backend = LocalBackend([str(guild_home)], runtime_dir=str(tmp_path / "runtime"))
    yield backend
    backend.close()


async def call(fn, *args, **kwargs):
    """A blocking client call off the event loop the test server runs on."""
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(fn, *args, **kwargs)
    )


def assert_same_shape(mine, theirs, where="$"):
    """The same keys, recursively; lists compared by their first items when both
    have one."""
    if isinstance(theirs, dict):
        assert isinstance(mine, dict) and sorted(mine) == sorted(theirs), where
        for key in theirs:
            assert_same_shape(mine[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(mine, list), where
        if mine and theirs:
            assert_same_shape(mine[0], theirs[0], f"{where}[0]")


# -- finding a backend -----------------------------------------------------------


async def test_connect_uses_the_server_the_environment_names(
    server_url, jp_serverapp, jp_base_url, monkeypatch
):
    monkeypatch.setenv(ENV_URL, server_url)
    monkeypatch.setenv(ENV_TOKEN, jp_serverapp.identity_provider.token)
    backend = await call(connect)
    try:
        assert isinstance(backend, ServerBackend)
        assert backend.description == f"server extension at {server_url}"
        assert backend.tensorboard_src() == f"{jp_base_url}guildimg/tensorboard/"
        assert (await call(backend.status))["monitor"]["running"]
    finally:
        backend.close()


async def test_the_environment_the_server_exports_is_enough(server_url, jp_serverapp):
    # Kernels inherit it: the server extension set it in its own environment. The token
    # is not in it: the kernel reads it from the server's runtime file, as a real server
    # writes it once started.
    jp_serverapp.write_server_info_file()
    assert os.environ[ENV_URL] == server_url
    assert ENV_TOKEN not in os.environ
    assert jp_serverapp.identity_provider.token not in os.environ.values()
    backend = await call(connect)
    try:
        assert isinstance(backend, ServerBackend) and backend.url == server_url
        assert (await call(backend.status))["monitor"]["running"]
    finally:
        backend.close()


async def test_the_token_is_only_taken_from_the_runtime_file_of_the_named_server(
    server_url, jp_serverapp, tmp_path, monkeypatch, guild_home
):
    jp_serverapp.write_server_info_file()
    # Another server's runtime file (its pid differs): not used, so the server named by
    # the environment refuses the kernel, and (no other server listed) it monitors itself.
    other = tmp_path / "jpserver-1.json"
    other.write_text(json.dumps({"pid": 1, "token": jp_serverapp.identity_provider.token}))
    monkeypatch.setenv(ENV_SERVER_INFO, str(other))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-servers-listed"))
    backend = await call(connect, [str(guild_home)])
    try:
        assert isinstance(backend, LocalBackend)
    finally:
        backend.close()
    # Without the path, the runtime file is found by the server's pid. (The server's
    # list entry names it by "localhost": the URL shows which way it was found.)
    monkeypatch.delenv(ENV_SERVER_INFO)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", jp_serverapp.runtime_dir)
    assert os.environ[ENV_SERVER_PID] == str(os.getpid())
    backend = await call(connect)
    try:
        assert isinstance(backend, ServerBackend) and backend.url == server_url
        assert "127.0.0.1" in server_url
    finally:
        backend.close()


async def test_connect_finds_a_running_server_whose_extension_answers(
    server_url, jp_serverapp, tmp_path, monkeypatch
):
    runtime = tmp_path / "runtime-with-servers"
    runtime.mkdir()
    for name, token in (("jpserver-1.json", "wrong"), ("jpserver-2.json", None)):
        info = {"url": server_url, "pid": os.getpid(), "root_dir": "/"}
        info["token"] = token or jp_serverapp.identity_provider.token
        (runtime / name).write_text(json.dumps(info))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv(ENV_URL, raising=False)  # exported by the server as it started
    backend = await call(connect)
    try:
        assert isinstance(backend, ServerBackend)
        assert backend.url == server_url
        assert await call(backend.runs) == []
    finally:
        backend.close()


def foreign_pid() -> int:
    """A pid that is neither this process, its parent nor its launcher."""
    return max(_own_servers()) + 1


async def test_an_inherited_server_that_did_not_start_the_kernel_is_not_used(
    server_url, jp_serverapp, monkeypatch, guild_home, tmp_path
):
    # What a kernel started by nbclient from a terminal of another Jupyter server
    # inherits: that server's URL and pid (its token too, to be sure it is refused for
    # not being ours, not for want of a token).
    monkeypatch.setenv(ENV_URL, server_url)
    monkeypatch.setenv(ENV_SERVER_PID, str(foreign_pid()))
    monkeypatch.setenv(ENV_TOKEN, jp_serverapp.identity_provider.token)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-servers-listed"))
    other = tmp_path / "my-runs"
    other.mkdir()

    for sources in ([], [str(other)]):
        backend = await call(connect, sources)
        try:
            assert isinstance(backend, LocalBackend), sources
        finally:
            backend.close()
    # Nor was it asked to watch the kernel's sources.
    guildimg = jp_serverapp.web_app.settings["jupyter_guildimg"]
    assert (await guildimg.call("sources"))["sources"] == [str(guild_home)]
    # One that already watches every source the notebook names is proven to see its runs.
    backend = await call(connect, [str(guild_home)])
    try:
        assert isinstance(backend, ServerBackend) and backend.url == server_url
    finally:
        backend.close()


async def test_a_listed_server_that_did_not_start_the_kernel_is_not_used(
    server_url, jp_serverapp, tmp_path, monkeypatch
):
    runtime = tmp_path / "runtime-with-a-foreign-server"
    runtime.mkdir()
    info = {"url": server_url, "pid": foreign_pid(), "root_dir": "/"}
    info["token"] = jp_serverapp.identity_provider.token
    (runtime / "jpserver-2.json").write_text(json.dumps(info))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv(ENV_URL, raising=False)

    backend = await call(connect)
    try:
        assert isinstance(backend, LocalBackend)
    finally:
        backend.close()


def test_connect_without_a_server_monitors_in_the_kernel(guild_home):
    backend = connect([str(guild_home)])
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.description == "in this kernel (no server extension reachable)"
        assert backend.status()["monitor"]["sources"] == [str(guild_home)]
    finally:
        backend.close()


def test_a_source_that_does_not_exist_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        connect([str(tmp_path), "/nope/runs"])
    assert str(caught.value) == "no such source: /nope/runs"


def test_the_shared_backend_is_made_once(guild_home):
    first = shared_backend()
    assert shared_backend() is first
    close_shared_backend()
    assert first.closed
    second = shared_backend()
    assert second is not first and not second.closed


# -- the server extension ----------------------------------------------------------


async def test_the_server_backend_speaks_the_rest_api(server, guild_home, jp_base_url):
    first, second = png((20, 10), "red"), png((300, 150), "blue")
    run_dir = write_run(guild_home, op="train", label="one", files={"samples/a.png": first})
    await call(server.refresh)
    Path(run_dir, "samples", "a.png").write_bytes(second)
    report = await call(server.refresh)
    assert [item["path"] for item in report["written"]] == ["samples/a.png"]

    (run,) = await call(server.runs)
    assert (run["id"], run["operation"], run["label"]) == (Path(run_dir).name, "train", "one")
    (image,) = (await call(server.images, run["id"]))["images"]
    newest, oldest = image["revisions"]
    assert image["path"] == "samples/a.png" and newest["revision"] > oldest["revision"]

    assert await call(server.image, run["id"], "samples/a.png") == second
    assert await call(server.image, run["id"], "samples/a.png", rev=oldest["revision"]) == first
    thumb = await call(server.image, run["id"], "samples/a.png", thumb=160)
    assert Image.open(io.BytesIO(thumb)).size == (160, 80)
    # A unique prefix names a run, as in the API.
    assert (await call(server.images, run["id"][:8]))["run"]["id"] == run["id"]
    assert await call(server.run, run["id"][:2]) == run
    with pytest.raises(BackendError, match="no run 'x'") as caught:
        await call(server.run, "x")
    assert caught.value.status == 404
    # Filtered on the server.
    assert await call(server.runs, q="TRAIN one") == [run]
    assert await call(server.runs, q="train two") == []
    assert await call(server.runs, image="samples/a.png", q=run["short_id"]) == [run]
    assert server.tensorboard_src() == f"{jp_base_url}guildimg/tensorboard/"


async def test_the_server_backend_chooses_tensorboards_runs(server, guild_home):
    old = write_run(guild_home, op="train", label="old", started=1, files={"a.png": png()})
    new = write_run(guild_home, op="eval", label="new", started=2, files={"a.png": png()})
    await call(server.refresh)
    old_key, new_key = Path(old).name, Path(new).name
    selection = await call(server.selection)
    assert (selection["mode"], selection["runs"], selection["total"]) == (
        "auto",
        [new_key, old_key],
        2,
    )

    chosen = await call(server.set_selection, "runs", runs=[old_key[:4]])
    assert (chosen["mode"], chosen["runs"], chosen["shown"]) == ("runs", [old_key], 1)
    assert await call(server.selection) == chosen
    assert [run["in_tensorboard"] for run in await call(server.runs)] == [False, True]
    filtered = await call(server.set_selection, "filter", filter="eval")
    assert (filtered["filter"], filtered["runs"]) == ("eval", [new_key])
    assert (await call(server.set_selection, "auto"))["shown"] == 2

    with pytest.raises(BackendError, match="no run 'nope'") as caught:
        await call(server.set_selection, "runs", runs=["nope"])
    assert caught.value.status == 400
    with pytest.raises(BackendError, match="mode 'filter' needs filter") as caught:
        await call(server.set_selection, "filter")
    assert caught.value.status == 400


async def test_server_errors_carry_the_api_message(server, server_url):
    with pytest.raises(BackendError) as caught:
        await call(server.images, "no-such-run")
    assert caught.value.status == 404
    assert "no run 'no-such-run'" in str(caught.value)

    intruder = ServerBackend(server_url, "not-the-token")
    with pytest.raises(BackendError) as caught:
        await call(intruder.status)
    assert caught.value.status == 403
    intruder.close()

    gone = ServerBackend("http://127.0.0.1:9/", "x")
    with pytest.raises(BackendError, match=r"cannot reach http://127\.0\.0\.1:9/"):
        await call(gone.status)
    assert not await call(gone.probe)
    gone.close()


async def test_wait_changes_long_polls_the_change_feed(server, guild_home):
    await call(server.refresh)
    generation = (await call(server.status))["monitor"]["generation"]
    assert await call(server.wait_changes, generation, timeout=0.2) == generation

    waiting = asyncio.ensure_future(call(server.wait_changes, generation, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    write_run(guild_home, op="train", files={"new.png": png()})
    assert await asyncio.wait_for(waiting, 15) > generation


async def test_connect_asks_the_server_to_watch_more_sources(
    server_url, jp_serverapp, tmp_path, monkeypatch
):
    extra = tmp_path / "lightning_logs" / "version_0"
    extra.mkdir(parents=True)
    (extra / "a.png").write_bytes(png())
    monkeypatch.setenv(ENV_URL, server_url)
    monkeypatch.setenv(ENV_TOKEN, jp_serverapp.identity_provider.token)
    backend = await call(connect, [str(tmp_path / "lightning_logs")])
    try:
        status = await call(backend.status)
        assert str(tmp_path / "lightning_logs") in status["monitor"]["sources"]
        await call(backend.refresh)
        assert [run["run_id"] for run in await call(backend.runs)] == ["version_0"]
    finally:
        backend.close()


async def test_both_backends_answer_the_same_json_shapes(server, guild_home, tmp_path):
    write_run(guild_home, op="train", label="x y", files={"a.png": png(), "b.txt": b"x"})
    write_run(guild_home, op="eval", files={"a.png": png()})
    local = LocalBackend([str(guild_home)], runtime_dir=str(tmp_path / "runtime"))
    try:
        assert_same_shape(local.refresh(), await call(server.refresh))
        assert_same_shape(local.status(), await call(server.status))
        remote_runs = await call(server.runs)
        assert local.runs() == remote_runs and len(remote_runs) == 2
        remote_run = remote_runs[0]
        assert local.run(remote_run["run_id"][:4]) == await call(server.run, remote_run["id"][:4])
        for q in ("train", "Y X", "eval", "nothing"):
            assert local.runs(q=q) == await call(server.runs, q=q), q
        remote_images = await call(server.images, remote_run["id"])
        assert_same_shape(local.images(remote_run["id"]), remote_images)
        # TensorBoard's runs: the same policy, the same resolver, the same answers.
        assert local.selection() == await call(server.selection)
        prefix = [remote_run["run_id"][:4]]
        chosen = await call(server.set_selection, "runs", runs=prefix)
        assert local.set_selection("runs", runs=prefix) == chosen
        assert local.runs() == await call(server.runs)  # in_tensorboard alike
        assert local.set_selection("filter", filter="Y X") == await call(
            server.set_selection, "filter", filter="Y X"
        )
        with pytest.raises(BackendError, match="no run 'nope'") as caught:
            local.set_selection("runs", runs=["nope"])
        assert caught.value.status == 400
        # The same resolver: a prefix too short is no run on either side.
        short = remote_run["id"][:1]
        with pytest.raises(BackendError, match=f"no run '{short}'") as caught:
            await call(server.run, short)
        assert caught.value.status == 404
        with pytest.raises(BackendError, match=f"no run '{short}'") as caught:
            local.run(short)
        assert caught.value.status == 404
    finally:
        local.close()


# -- in the kernel -------------------------------------------------------------------


def test_the_local_backend_lists_runs_and_serves_images(local, guild_home):
    data = png((400, 100), "green")
    run_dir = write_run(guild_home, op="train", files={"a.png": data})
    report = local.refresh()
    assert report["written"] == [] or report["written"][0]["path"] == "a.png"
    (run,) = wait_for(local.runs, 10, "the run")
    assert run["id"] == Path(run_dir).name and run["image_count"] == 1
    assert local.image(run["id"], "a.png") == data
    assert Image.open(io.BytesIO(local.image(run["id"], "a.png", thumb=160))).size == (160, 40)
    with pytest.raises(BackendError, match=r"no image 'b\.png'") as caught:
        local.image(run["id"], "b.png")
    assert caught.value.status == 404
    status = local.status()
    assert status["monitor"]["running"] and status["monitor"]["interval"] == 1.0
    assert status["tensorboard"]["status"] == "stopped"


def test_the_local_change_feed_wakes_waiters(local, guild_home):
    local.refresh()
    generation = local.status()["monitor"]["generation"]
    started = time.monotonic()
    assert local.wait_changes(generation, timeout=0.2) == generation
    assert time.monotonic() - started >= 0.2

    write_run(guild_home, op="train", files={"a.png": png()})
    started = time.monotonic()
    assert local.wait_changes(generation, timeout=20) > generation
    assert time.monotonic() - started < 5  # the monitor's own pass, every second


def test_the_local_backend_watches_added_sources(local, tmp_path, guild_home):
    runs = tmp_path / "outputs" / "version_0"
    runs.mkdir(parents=True)
    (runs / "a.png").write_bytes(png())
    result = local.add_source(str(tmp_path / "outputs"))
    assert result["sources"][-1] == str(tmp_path / "outputs")
    assert local.add_source(str(tmp_path / "outputs")) == result  # once only
    local.refresh()
    assert [run["run_id"] for run in local.runs()] == ["version_0"]
    with pytest.raises(FileNotFoundError, match="no such source: /nope"):
        local.add_source("/nope")
    with pytest.raises(ValueError, match="contains the monitor's log dir"):
        local.add_source("/")

    assert local.remove_source(str(tmp_path / "outputs"))["sources"] == [str(guild_home)]
    local.refresh()
    assert local.runs() == []
    with pytest.raises(BackendError, match="not watched") as caught:
        local.remove_source(str(tmp_path / "outputs"))
    assert caught.value.status == 404


async def test_the_server_backend_adds_and_removes_sources(server, guild_home, tmp_path):
    extra = tmp_path / "lightning_logs"
    extra.mkdir()
    assert (await call(server.add_source, str(extra)))["sources"] == [str(guild_home), str(extra)]
    with pytest.raises(BackendError, match="contains the monitor's log dir") as caught:
        await call(server.add_source, "/")
    assert caught.value.status == 400
    assert (await call(server.remove_source, str(extra)))["sources"] == [str(guild_home)]
    with pytest.raises(BackendError, match="not watched") as caught:
        await call(server.remove_source, str(extra))
    assert caught.value.status == 404


@pytest.mark.tensorboard
async def test_the_server_starts_tensorboard_once_and_restarts_it_when_asked(server):
    state = await call(server.start_tensorboard)
    assert state["status"] == "ready"
    assert (await call(server.start_tensorboard))["pid"] == state["pid"]  # not restarted
    restarted = await call(server.restart_tensorboard)
    assert restarted["status"] == "ready" and restarted["pid"] != state["pid"]
    assert not process_running(state["pid"])
    stopped = await call(server.stop_tensorboard)
    assert stopped["status"] == "stopped" and not process_running(restarted["pid"])


def test_closing_the_local_backend_stops_everything(guild_home, tmp_path):
    backend = LocalBackend([str(guild_home)], runtime_dir=str(tmp_path))
    assert backend.monitor.running and os.path.isdir(backend.logdir)
    backend.close()
    assert not backend.monitor.running and not os.path.exists(backend.logdir)
    wait_for(lambda: not os.path.exists(backend.logdir + ".removing"), 30, "its removal")
    assert backend.closed
    backend.close()  # again: nothing happens
    with pytest.raises(BackendError, match="closed"):
        backend.runs()
    # A waiter is not kept waiting by a closed backend.
    assert backend.wait_changes(10**9, timeout=10) < 10**9


@pytest.mark.tensorboard
def test_the_kernels_tensorboard_lives_and_dies_with_the_backend(local, guild_home):
    write_run(guild_home, op="train", files={"a.png": png()})
    src = local.tensorboard_src()  # starts it in the background
    assert src.startswith("http://127.0.0.1:") and src.endswith("/")
    state = local.start_tensorboard()
    assert state["status"] == "ready"
    assert src == f"http://127.0.0.1:{state['port']}/"
    assert httpx.get(src + "data/environment", timeout=10).status_code == 200
    assert local.status()["tensorboard"]["pid"] == state["pid"]
    assert local.start_tensorboard()["pid"] == state["pid"]  # idempotent
    restarted = local.restart_tensorboard()
    assert restarted["status"] == "ready" and restarted["pid"] != state["pid"]
    assert not process_running(state["pid"])
    state = restarted
    local.close()
    assert not process_running(state["pid"])
    with pytest.raises(httpx.ConnectError):
        httpx.get(src, timeout=5)


@pytest.mark.tensorboard
def test_nothing_outlives_the_interpreter(guild_home, tmp_path):
    script = f"""
import sys
from jupyter_guildimg.notebook.client import LocalBackend
backend = LocalBackend([{str(guild_home)!r}], runtime_dir={str(tmp_path)!r})
state = backend.start_tensorboard()
print(state["status"], state["pid"], backend.logdir, flush=True)
"""  # and exits without closing anything
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=True
    )
    status, pid, logdir = done.stdout.split()
    assert status == "ready"
    assert not process_running(int(pid))
    assert not os.path.exists(logdir)
    assert not list(tmp_path.glob("jupyter_guildimg-tensorboard-*.json"))
