"""``%load_ext jupyter_guildimg`` and the ``%guildimg`` magic, in a real IPython shell."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.notebook.client import (
    LocalBackend,
    ServerBackend,
    shared_backend,
)
from jupyter_guildimg.notebook.compare import ImageComparison
from jupyter_guildimg.notebook.magic import last_comparison, last_panel
from jupyter_guildimg.notebook.widget import GuildImgPanel

from helpers import png

pytestmark = pytest.mark.usefixtures("no_servers")


@pytest.fixture
def shell(monkeypatch, tmp_path):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "jupyter_guildimg")
    yield shell
    if "guildimg" in shell.magics_manager.magics["line"]:
        shell.run_line_magic("unload_ext", "jupyter_guildimg")
    InteractiveShell.clear_instance()


def output_lines(capsys):
    captured = capsys.readouterr()
    return (captured.out + captured.err).splitlines()


def test_load_ext_registers_the_magic_with_ipython_style_help(shell, capsys):
    assert "guildimg" in shell.magics_manager.magics["line"]
    assert shell.run_line_magic("guildimg", "--help") is None
    text = "\n".join(output_lines(capsys))
    assert text.startswith("::\n\n  %guildimg [--source PATH] [--run ID] [--height N]")
    for word in (
        "{compare,refresh,status,stop,tensorboard}",
        "[RUN ...]",
        "--path IMAGE",
        "--align {revision,time}",
        "%guildimg compare 3f2a9c1b@5 3f2a9c1b",
        "--run ID",
        "--height N",
        "--tab {images,tensorboard}",
        "--runs ID [ID ...]",
        "--filter TEXT",
        "--auto",
    ):
        assert word in text
    assert "Show the images of ML runs" in text and "%guildimg refresh" in text
    # %guildimg? shows the same text: IPython builds the docstring from the arguments.
    assert shell.find_line_magic("guildimg").__doc__.strip() == text.strip()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus", "guildimg: unrecognized arguments: --bogus"),
        ("--source /nope", "guildimg: no such source: /nope"),
        ("--source", "guildimg: argument --source: expected one argument"),
        ("--tab scalars", "guildimg: argument --tab: invalid choice: 'scalars'"),
        ("--height tall", "guildimg: argument --height: invalid int value: 'tall'"),
        ("--height 10", "guildimg: --height must be at least 100, not 10"),
        ("restart", "guildimg: argument command: invalid choice: 'restart'"),
        ('--source "unclosed', "guildimg: No closing quotation"),
        ("--run nope", "guildimg: no run 'nope'"),
        ("--runs abc", "guildimg: --runs goes with the tensorboard command"),
        ("status --auto", "guildimg: --auto goes with the tensorboard command"),
        ("--filter ''", "guildimg: --filter goes with the tensorboard command"),
        ("tensorboard --auto --filter x", "guildimg: choose one of --runs, --filter and --auto"),
        ("tensorboard --runs", "guildimg: argument --runs: expected at least one argument"),
        ("compare", "guildimg: compare needs at least one RUN: %guildimg compare RUN…"),
        ("compare --path a.png", "guildimg: compare needs at least one RUN"),
        ("refresh abc", "guildimg: unrecognized arguments: abc"),
        ("--path a.png", "guildimg: --path goes with the compare command"),
        ("status --align time", "guildimg: --align goes with the compare command"),
        ("compare abc --align step", "guildimg: argument --align: invalid choice: 'step'"),
        ("compare nope --path a.png", "guildimg: no run 'nope'"),
    ],
)
def test_a_mistake_is_one_clear_line(shell, capsys, line, message):
    assert shell.run_line_magic("guildimg", line) is None
    (printed,) = output_lines(capsys)
    assert printed.startswith(message)


def test_status_prints_the_monitor_and_tensorboard(shell, capsys, guild_home):
    write_run(guild_home, op="train", files={"a.png": png()})
    shared_backend().refresh()
    shell.run_line_magic("guildimg", "status")
    lines = output_lines(capsys)
    assert lines[0].startswith("Monitor: running, a pass every 1 s, ")
    assert "  1 runs, 1 images" in lines
    assert f"  sources: {guild_home}" in lines
    assert "TensorBoard is not running" in lines
    assert lines[-1] == "Backend: in this kernel (no server extension reachable)"


def test_status_prints_which_runs_tensorboard_shows_and_its_warnings(shell, capsys, guild_home):
    write_run(guild_home, op="train", files={"a.png": png()})
    backend = shared_backend()
    backend.refresh()
    tensorboard = backend.tensorboard
    # More event files than TensorBoard may open: the server's open-files warning.
    tensorboard.files_needed = lambda: tensorboard.file_limit + 1
    (warning,) = backend.status()["tensorboard"]["warnings"]
    shell.run_line_magic("guildimg", "status")
    lines = output_lines(capsys)
    at = lines.index("TensorBoard is not running")
    assert lines[at + 1 : at + 3] == [
        "It shows 1 of 1 run (auto: every run while there are at most 200).",
        f"  warning: {warning}",
    ]
    assert warning.startswith("TensorBoard needs about ")

    backend.set_selection("runs", runs=[])
    tensorboard.files_needed = lambda: 0
    shell.run_line_magic("guildimg", "status")
    lines = output_lines(capsys)
    at = lines.index("TensorBoard is not running")
    assert lines[at + 1 :] == [
        "It shows 0 of 1 run (chosen runs).",
        "Backend: in this kernel (no server extension reachable)",
    ]


def test_refresh_prints_what_the_pass_wrote(shell, capsys, guild_home):
    backend = shared_backend()
    backend.monitor.stop()  # so this pass, not the monitor's own, finds the run
    run_dir = write_run(guild_home, op="train", files={"a.png": png(), "b.png": png()})
    shell.run_line_magic("guildimg", "refresh")
    lines = output_lines(capsys)
    assert lines[0].startswith("Pass took ") and lines[0].endswith(": 1 runs, 2 images.")
    assert lines[1] == "Wrote 2 image summaries."
    assert lines[2].startswith(f"  {Path(run_dir).name[:8]} train ") and lines[2].endswith(
        ": a.png"
    )
    assert lines[4].startswith("Runs added: ")


def test_the_magic_shows_the_panel(shell, capsys, guild_home):
    old = write_run(guild_home, op="old", started=1, files={"a.png": png()})
    write_run(guild_home, op="new", files={"b.png": png()})
    shared_backend().refresh()
    shell.run_line_magic("guildimg", f"--run {Path(old).name[:8]} --height 300")
    panel = last_panel()
    assert isinstance(panel, GuildImgPanel) and isinstance(panel.backend, LocalBackend)
    assert panel.run_list.runs_select.value == (Path(old).name,)
    assert len(panel.images.thumbnail_images) == 1
    assert panel.header.auto_refresh.value and panel.refresh_thread.is_alive()
    assert "GuildImgPanel" in "".join(output_lines(capsys))  # displayed

    shell.run_line_magic("unload_ext", "jupyter_guildimg")
    assert "guildimg" not in shell.magics_manager.magics["line"]
    assert not panel.refresh_thread.is_alive()  # unloading closed it


def test_compare_shows_one_image_of_several_runs(shell, capsys, guild_home):
    red = write_run(guild_home, op="red", started=1, files={"a.png": png(), "x.png": png()})
    blue = write_run(guild_home, op="blue", files={"a.png": png(colour="blue")})
    shared_backend().refresh()
    red_id, blue_id = Path(red).name, Path(blue).name
    shell.run_line_magic("guildimg", f"compare {red_id[:8]} {blue_id[:8]}")  # the common path
    comparison = last_comparison()
    assert isinstance(comparison, ImageComparison) and comparison.path == "a.png"
    assert [cell.run_id for cell in comparison.cells] == [red_id, blue_id]
    assert comparison.difference.diff.differing == 16 * 16  # red against blue: every pixel
    assert "ImageComparison" in "".join(output_lines(capsys))  # displayed

    shell.run_line_magic("guildimg", f"compare {red_id[:8]}@1 {red_id[:8]} --path x.png")
    assert last_comparison() is not comparison and comparison.slider.comm is None  # closed
    assert [cell.pin for cell in last_comparison().cells] == [1, None]
    capsys.readouterr()
    shell.run_line_magic("guildimg", f"compare {red_id[:8]} {blue_id[:8]} --path x.png")
    assert capsys.readouterr().err == ""  # not a mistake: the run without it says so
    assert "no image x.png" in last_comparison().cells[1].label.value
    shell.run_line_magic("guildimg", f"compare {blue_id[:8]} --path x.png")
    assert output_lines(capsys)[-1] == "guildimg: none of these runs has an image 'x.png'"

    last = last_comparison()
    shell.run_line_magic("unload_ext", "jupyter_guildimg")
    assert last.slider.comm is None  # unloading closed it


def test_stop_stops_tensorboard(shell, capsys):
    shell.run_line_magic("guildimg", "stop")
    assert output_lines(capsys) == ["TensorBoard is not running"]


async def test_the_magic_uses_the_server_extension(
    shell, capsys, guild_home, jp_serverapp, http_server_client, jp_http_port, jp_base_url
):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    write_run(guild_home, op="train", files={"a.png": png()})
    run = functools.partial(shell.run_line_magic, "guildimg")
    loop = asyncio.get_running_loop()
    # The server exported its address as it started: the magic needs nothing more.
    await loop.run_in_executor(None, run, "status")
    lines = capsys.readouterr().out.splitlines()  # stderr has the server's log
    assert lines[0].startswith("Monitor: running, a pass every 0.5 s")
    assert lines[-1] == f"Backend: server extension at {url}"
    assert isinstance(shared_backend(), ServerBackend)
    await loop.run_in_executor(None, run, "refresh")
    assert capsys.readouterr().out.startswith("Pass took ")


@pytest.mark.tensorboard
async def test_tensorboard_shows_the_runs_asked_for(
    shell, capsys, guild_home, guildimg, http_server_client
):
    old = write_run(guild_home, op="train", label="old", started=1, files={"a.png": png()})
    new = write_run(guild_home, op="eval", label="new", started=2, files={"a.png": png()})
    run = functools.partial(shell.run_line_magic, "guildimg")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, run, "refresh")
    capsys.readouterr()

    await loop.run_in_executor(None, run, f"tensorboard --runs {Path(old).name[:6]}")
    lines = capsys.readouterr().out.splitlines()  # stderr has the server's log
    assert lines[:2] == ["TensorBoard is ready", "It shows 1 of 2 runs (chosen runs)."]
    assert (await guildimg.call("selection"))["runs"] == [Path(old).name]
    assert guildimg.tensorboard.status == "ready"

    await loop.run_in_executor(None, run, "tensorboard --filter 'eval new'")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "It shows 1 of 2 runs (filter 'eval new')."
    assert (await guildimg.call("selection"))["runs"] == [Path(new).name]

    await loop.run_in_executor(None, run, "tensorboard --auto")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("It shows 2 of 2 runs (auto: every run while there are at most 200).")
    await loop.run_in_executor(None, run, "tensorboard --runs nope")
    assert "guildimg: no run 'nope' (HTTP 400)" in capsys.readouterr().err
    await loop.run_in_executor(None, run, "stop")
