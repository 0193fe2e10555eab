"""The notebook panel in a real browser: JupyterLab with the extension runs
notebooks/quickstart.ipynb in headless Chromium (Debian's ``chromium``, driven by
Playwright; it never downloads a browser of its own). Screenshots go to test-output/."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_guildimg.runs import GuildHome

from helpers import png, wait_for

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
OUTPUT = REPO / "test-output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No GPU, sandbox or first-run UI in a container; and no background connections:
# this machine's network is closed, and refused connections only slow Chromium down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
THUMBNAILS = ".guildimg-panel img.guildimg-thumb, .guildimg-panel .guildimg-thumb img"


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl+C would: the server shuts its kernels, TensorBoard and
    monitor down. SIGKILL for its whole process group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def lab(tmp_path: Path, guild_home: Path) -> Iterator[Lab]:
    """``jupyter lab`` on a free port with the extension watching the test's Guild
    home, its root holding a copy of the quickstart notebook, and every Jupyter
    directory (config, data, runtime, Lab settings and workspaces) its own."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    jupyter = tmp_path / "jupyter"
    settings = jupyter / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "Would you like to get notified about official Jupyter news?" popup.
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    config = jupyter / "jupyter_lab_test_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{'guild:' + str(guild_home)!r}]\n"
        # No network: Lab must not look for updates or news.
        "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
        "c.LabApp.news_url = None\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_GUILDIMG_")}
    env.update(
        GUILD_HOME=str(guild_home),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(jupyter / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"),
    )
    port = free_port()
    token = os.urandom(16).hex()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}", f"--config={config}",
        f"--IdentityProvider.token={token}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    log = tmp_path / "jupyter-lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{url}/api/status?token={token}"):
            assert process.poll() is None, f"jupyter lab exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer:\n{log.read_text()}"
            time.sleep(0.25)
        yield Lab(url, token, root, log)
    finally:
        stop(process)
        print(f"--- end of {log}:\n{log.read_text()[-6000:]}")


def screenshot(page, name: str) -> None:
    """The page, scrolled to the panel when there is one."""
    OUTPUT.mkdir(exist_ok=True)
    panel = page.locator(".guildimg-panel").first
    if panel.count():
        panel.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / f"browser-{name}.png"))


def captured(lab: Lab, run_id: str) -> list[str]:
    """The image paths the server's monitor captured for a run."""
    request = f"{lab.url}/guildimg/api/runs/{run_id}/images?token={lab.token}"
    with urllib.request.urlopen(request, timeout=30) as response:
        return [image["path"] for image in json.loads(response.read())["images"]]


def all_loaded(page) -> None:
    """Every thumbnail of the panel has its picture (not a broken or empty image)."""
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=THUMBNAILS,
        timeout=30_000,
    )


def test_quickstart_in_jupyterlab(lab: Lab, guild_home: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's Chromium is missing: apt-get install -y chromium (scripts/test does)")
    for old in glob.glob(str(OUTPUT / "browser-*.png")):
        os.remove(old)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1100},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            run_quickstart(page, lab, guild_home)
        except BaseException:
            screenshot(page, "failure")
            raise
        finally:
            context.close()
    assert not errors, errors


def run_quickstart(page, lab: Lab, guild_home: Path) -> None:
    from playwright.sync_api import expect

    # Open the notebook and wait for its kernel (Run All before it is connected
    # would run nothing).
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
    page.locator(".jp-Notebook").wait_for(timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)

    # Run → Run All Cells, as a user would.
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    # The panel, and the notebook's own check at the end (which waits for the runs).
    panel = page.locator(".guildimg-panel").first
    expect(panel).to_be_visible(timeout=120_000)
    expect(page.get_by_text("OK: 3 runs")).to_be_visible(timeout=120_000)
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    screenshot(page, "1-panel")

    # Thumbnails of the newest run, each one loaded.
    thumbnails = page.locator(THUMBNAILS)
    expect(thumbnails).to_have_count(3, timeout=30_000)
    all_loaded(page)

    # TensorBoard in the second tab, through the server's proxy, showing the runs.
    newest = GuildHome(guild_home).list_runs()[0]
    panel.get_by_role("tab", name="TensorBoard").click()
    frame = page.frame_locator(".guildimg-tensorboard iframe")
    expect(frame.locator("tb-webapp")).to_be_attached(timeout=120_000)
    expect(frame.get_by_text(newest.short_id).first).to_be_visible(timeout=60_000)
    (tensorboard,) = [f for f in page.frames if "/guildimg/tensorboard/" in f.url]
    assert tensorboard.title() == "TensorBoard"
    screenshot(page, "2-tensorboard")
    panel.get_by_role("tab", name="Images").click()

    # A new image in the newest run appears by itself (the change feed), within 3 s.
    before = thumbnails.count()
    Path(newest.dir, "fresh.png").write_bytes(png((64, 48), "green"))
    started = time.monotonic()
    expect(panel.get_by_text("fresh.png")).to_be_visible(timeout=3_000)
    expect(thumbnails).to_have_count(before + 1, timeout=1_000)
    print(f"The new image was in the panel after {time.monotonic() - started:.2f} s")
    all_loaded(page)
    screenshot(page, "3-new-image")

    # With auto-refresh off, a new image waits for the Refresh button.
    panel.get_by_role("checkbox", name="Auto-refresh").uncheck()
    page.wait_for_timeout(500)  # the kernel hears of it
    Path(newest.dir, "later.png").write_bytes(png((32, 32), "purple"))
    wait_for(lambda: "later.png" in captured(lab, newest.id), 10, "the server to capture it")
    page.wait_for_timeout(1_500)
    expect(panel.get_by_text("later.png")).to_have_count(0)
    page.locator(".guildimg-refresh").first.click()
    expect(panel.get_by_text("later.png")).to_be_visible(timeout=10_000)
    expect(thumbnails).to_have_count(before + 2)
    expect(panel.locator("select option")).to_have_count(3)  # the runs are all there
    all_loaded(page)
    screenshot(page, "4-refreshed")
