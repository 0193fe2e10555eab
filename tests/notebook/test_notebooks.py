"""The notebooks of notebooks/, run top to bottom by nbclient in a real kernel against
a real Jupyter server with the extension: pytest-jupyter's, in this process. The
extension exports its URL and the path of its runtime file (never the token) into
os.environ and the kernel, a subprocess, inherits them, as kernels of any Jupyter
server do; the ``guildimg`` fixture writes that runtime file. Cells run on the test's event
loop (``async_execute_cell``), so the server keeps answering the kernel meanwhile.
The tests ask for ``jp_fetch``: without it pytest-jupyter binds the server's port but
never serves it, and the kernel would fall back to a monitor of its own.

After a notebook has run, more code runs in the same kernel to read the panel's
widgets: what a user would see."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.demo import make_demo_runs
from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.rest import ENV_SERVER_INFO, ENV_SERVER_PID, ENV_URL

import browser
from helpers import monitor_status, png

pytestmark = pytest.mark.notebook

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
OUTPUT = REPO / "test-output"  # the executed notebooks, to look at (git-ignored)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class Session:
    """A notebook that has run, and its kernel, still up."""

    nb: Any
    client: NotebookClient

    async def run(self, code: str) -> str:
        """Run ``code`` in the kernel as one more cell; its stdout."""
        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)
        await self.client.async_execute_cell(cell, len(self.nb.cells) - 1)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")

    async def json(self, code: str) -> Any:
        """Run ``code``, which prints one JSON document; that document."""
        return json.loads(await self.run(code))

    def outputs(self, source: str) -> list[Any]:
        """The outputs of the notebook's cell whose source starts with ``source``."""
        (cell,) = [c for c in self.nb.cells if c.source.startswith(source)]
        return cell.outputs


@contextlib.asynccontextmanager
async def executed(name: str, cwd: Path) -> AsyncIterator[Session]:
    """Run every cell of ``notebooks/<name>`` (a cell's error fails the test)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    try:
        async with client.async_setup_kernel():
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
            yield Session(nb, client)
    finally:
        OUTPUT.mkdir(exist_ok=True)
        nbformat.write(nb, OUTPUT / f"executed-{name}")
    problems = [
        (cell.source.splitlines()[0], output)
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error" or output.get("name") == "stderr"
    ]
    assert not problems, problems


def shows_a_widget(outputs: list[Any]) -> bool:
    return any(WIDGET_VIEW in output.get("data", {}) for output in outputs)


def stdout(outputs: list[Any]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")


PANEL_STATE = """
import json
import jupyter_guildimg
p = jupyter_guildimg.panel({args})
print(json.dumps({{
    "runs": [label for label, _key in p.run_list.runs_select.options],
    "selected": list(p.run_list.runs_select.value),
    "thumbnails": [box.children[1].description for box in p.images.thumbnails.children],
    "loaded": [len(image.value) for image in p.images.thumbnail_images],
    "status": p.header.status_html.value,
    "sources": p.header.sources_html.value,
    "backend": type(p.backend).__name__,
}}))
"""


async def test_quickstart(jp_fetch, guildimg, guild_home, tmp_path):
    async with executed("quickstart.ipynb", tmp_path) as session:
        runs = GuildHome(guild_home).list_runs()
        assert len(runs) == 3
        assert shows_a_widget(session.outputs("%guildimg"))
        assert "OK: 3 demo runs; the newest shows 3 images" in stdout(
            session.outputs("import time")
        )

        # The panel lists the runs, newest first, and shows the newest one's images.
        state = await session.json(PANEL_STATE.format(args=""))
        assert state["backend"] == "ServerBackend"  # the server's monitor, not its own
        assert [label.split()[0] for label in state["runs"]] == [r.short_id for r in runs]
        assert len(state["selected"]) == 1
        assert sorted(state["thumbnails"]) == [
            "plots/attention.jpg",
            "plots/confusion.png",
            "samples.png",
        ]
        assert all(state["loaded"]) and len(state["loaded"]) == 3
        assert "3 runs" in state["status"]

        # Thumbnails are small images of the real ones.
        sizes = await session.json(
            "from PIL import Image; import io\n"
            "thumbs = p.images.thumbnail_images\n"
            "print(json.dumps([Image.open(io.BytesIO(i.value)).size for i in thumbs]))"
        )
        assert all(max(size) <= 160 for size in sizes)

        # Refresh runs a pass and lists again: with the panel no longer following the
        # change feed, only the button can show a new image.
        await session.run("p.header.auto_refresh.value = False")
        passes = (await monitor_status(guildimg))["passes"]
        Path(runs[0].dir, "fresh.png").write_bytes(png((40, 30), "green"))
        paths = await session.json(
            "p.header.refresh_button.click()\n"
            "boxes = p.images.thumbnails.children\n"
            "print(json.dumps([box.children[1].description for box in boxes]))"
        )
        assert "fresh.png" in paths
        assert (await monitor_status(guildimg))["passes"] > passes
        await session.run("p.close()")


async def test_quickstart_works_on_its_own_runs_whatever_else_the_home_holds(
    jp_fetch, guildimg, guild_home, tmp_path
):
    # Its demo runs from an earlier session, then a run of the user's own, newer and
    # with one image; and a demo run that is not the notebook's (another label).
    demo = make_demo_runs(str(guild_home), 3, label="quickstart")
    make_demo_runs(str(guild_home), 1, label="someone else's")
    mine = write_run(guild_home, op="my-train", files={"only.png": png()})

    async with executed("quickstart.ipynb", tmp_path) as session:
        assert "OK: 3 demo runs; the newest shows 3 images" in stdout(
            session.outputs("import time")
        )
        made = stdout(session.outputs("from jupyter_guildimg.engine.runs"))
        assert all(run.short_id in made for run in demo)

    runs = GuildHome(guild_home).list_runs()
    assert len(runs) == 5  # no run made: its three were there
    assert runs[0].dir == mine


async def test_a_kernel_no_server_started_ignores_an_unrelated_server(
    guild_home, tmp_path, monkeypatch
):
    # Another Jupyter server with the extension runs on this machine, watching other
    # runs; the kernel below is started by nbclient (this process), not by it. It even
    # inherits that server's environment, as from a terminal of that server.
    other_home = tmp_path / "other-home"
    write_run(other_home, op="theirs", files={"theirs.png": png()})
    with browser.jupyter("server", tmp_path, other_home) as other:
        runtime = other.root.parent / "jupyter" / "runtime"
        (info_file,) = runtime.glob("jpserver-*.json")
        info = json.loads(info_file.read_text())
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        monkeypatch.setenv(ENV_URL, other.url + "/")
        monkeypatch.setenv(ENV_SERVER_PID, str(info["pid"]))
        monkeypatch.setenv(ENV_SERVER_INFO, str(info_file))
        assert other.api("status")["monitor"]["sources"] == [str(other_home)]

        async with executed("train-and-watch.ipynb", tmp_path) as session:
            state = await session.json(PANEL_STATE.format(args=""))
            await session.run("p.close()")
            header = state["sources"]

        assert state["backend"] == "LocalBackend"
        assert "in this kernel" in header
        (run,) = GuildHome(guild_home).list_runs()
        assert run.operation == "watch" and run.status == "completed"
        # The other server was left alone: asked to watch nothing more.
        assert other.api("sources")["sources"] == [str(other_home)]


async def test_train_and_watch(jp_fetch, guildimg, guild_home, tmp_path):
    async with executed("train-and-watch.ipynb", tmp_path) as session:
        (run,) = GuildHome(guild_home).list_runs()
        assert run.operation == "watch"
        assert run.status == "completed"  # the loop marked it finished
        assert shows_a_widget(session.outputs("%load_ext"))
        check = stdout(session.outputs("import urllib.parse"))
        assert "OK: sample.png has" in check and "TensorBoard has 12 loss points" in check

        # The server captured several revisions of sample.png as the loop rewrote it.
        listing = await guildimg.call("images", run.id)
        (sample,) = [image for image in listing["images"] if image["path"] == "sample.png"]
        revisions = sample["revisions"]
        assert len(revisions) >= 3
        assert all((r["width"], r["height"]) == (128, 128) for r in revisions)

        # The panel opened on the run shows them: the viewer's slider has each one, and
        # an older revision is a different picture from the newest.
        state = await session.json(PANEL_STATE.format(args=f"run={run.id!r}"))
        assert state["backend"] == "ServerBackend"
        assert state["runs"][0].startswith(run.short_id)
        assert state["thumbnails"] == ["sample.png"]
        viewer = await session.json(
            "p.open_image(p.run_list.runs_select.value[0], 'sample.png')\n"
            "newest = p.images.viewer_image.value\n"
            "options = p.images.revision_slider.options\n"
            "p.images.revision_slider.value = options[-1][1]\n"
            "print(json.dumps({'revisions': len(options), "
            "'older_differs': p.images.viewer_image.value != newest, "
            "'info': p.images.viewer_info.value}))"
        )
        assert viewer["revisions"] == len(revisions)
        assert viewer["older_differs"]
        assert "sample.png" in viewer["info"]
        await session.run("p.close()")

        # TensorBoard (through the server's proxy) has the loss curve.
        response = await jp_fetch("guildimg", "tensorboard", "data", "plugin", "scalars", "tags")
        tags = json.loads(response.body)
        (name,) = [name for name in tags if name.startswith(run.short_id)]
        assert "loss" in tags[name]
        image = await jp_fetch(
            "guildimg", "api", "runs", run.id, "images", "sample.png", params={"thumb": 64}
        )
        assert Image.open(io.BytesIO(image.body)).size == (64, 64)
