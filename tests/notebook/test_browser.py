"""The notebook panel in a real browser: JupyterLab with the extension runs
notebooks/quickstart.ipynb in headless Chromium (the ``lab`` and ``chromium``
fixtures of conftest.py). Screenshots go to test-output/."""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path

import pytest

from jupyter_guildimg.engine.runs import GuildHome

from browser import OUTPUT, REPO, Browser, Lab, all_loaded
from browser import screenshot as save_screenshot
from helpers import png, wait_for

pytestmark = pytest.mark.browser

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
THUMBNAILS = ".guildimg-panel img.guildimg-thumb, .guildimg-panel .guildimg-thumb img"


def screenshot(page, name: str) -> None:
    """The page, scrolled to the panel when there is one."""
    save_screenshot(page, f"browser-{name}", scroll_to=".guildimg-panel")


def captured(lab: Lab, run_id: str) -> list[str]:
    """The image paths the server's monitor captured for a run."""
    return [image["path"] for image in lab.api(f"runs/{run_id}/images")["images"]]


def test_quickstart_in_jupyterlab(lab: Lab, chromium: Browser, guild_home: Path) -> None:
    for old in glob.glob(str(OUTPUT / "browser-*.png")):
        os.remove(old)
    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    run_quickstart(chromium.page, lab, guild_home)
    assert not chromium.errors, chromium.errors


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
    expect(page.get_by_text("OK: 3 demo runs")).to_be_visible(timeout=120_000)
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    screenshot(page, "1-panel")

    # Thumbnails of the newest run, each one loaded.
    thumbnails = page.locator(THUMBNAILS)
    expect(thumbnails).to_have_count(3, timeout=30_000)
    all_loaded(page, THUMBNAILS)

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
    all_loaded(page, THUMBNAILS)
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
    all_loaded(page, THUMBNAILS)
    screenshot(page, "4-refreshed")
