"""The JupyterLab sidebar (labextension/) in a real browser: JupyterLab, and Notebook
7, with the extension on real Guild runs, driven in headless Chromium (the ``lab``,
``notebook7`` and ``chromium`` fixtures of conftest.py). What users rely on: the
runs listed newest first, their thumbnails, the image tab with its revision slider
and comparison, live updates, TensorBoard in a tab, the filter, the selection and
the open tabs kept across a reload, the palette's commands. Every test fails on a
page error. Screenshots go to test-output/lab-*.png."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg import __version__
from jupyter_guildimg.guild.demo import make_demo_runs
from jupyter_guildimg.guild.project import write_run

from browser import Browser, Lab, all_loaded, jupyter, screenshot
from helpers import png, wait_for

pytestmark = pytest.mark.browser

SIDEBAR = "#guildimg-sidebar"
# The sidebar's tab in JupyterLab's left tab bar.
SIDEBAR_TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="guildimg-sidebar"]'
RUNS = f"{SIDEBAR} li.guildimg-run"
THUMB_ITEMS = f"{SIDEBAR} button.guildimg-thumb-item"
THUMBS = f"{SIDEBAR} img.guildimg-sidebar-thumb"
VIEWER = ".guildimg-viewer"
TENSORBOARD_TAB = "#guildimg-tensorboard-tab"
STATE_KEY = "jupyter-guildimg:plugin:sidebar"


# -- the server's side --------------------------------------------------------


def api_runs(lab: Lab) -> list[dict[str, Any]]:
    """``GET guildimg/api/runs``: the runs the sidebar is to list, newest first."""
    return lab.api("runs")["runs"]


def wait_for_runs(lab: Lab, count: int) -> list[dict[str, Any]]:
    """The API's runs once the monitor has found ``count`` of them, each with its start
    read and the listing settled (events may list a run while it is being made)."""

    def settled() -> list[dict[str, Any]] | None:
        runs = api_runs(lab)
        if len(runs) != count or any(run["started"] is None for run in runs):
            return None
        time.sleep(0.3)
        return runs if api_runs(lab) == runs else None

    return wait_for(settled, 60, f"{count} runs")


def revisions(lab: Lab, run_id: str, path: str) -> list[int]:
    """The revision counters the server keeps of a run's image, newest first."""
    for image in lab.api(f"runs/{run_id}/images")["images"]:
        if image["path"] == path:
            return [revision["revision"] for revision in image["revisions"]]
    return []


def write_revisions(lab: Lab, run_id: str, run_dir: str, path: str, widths: list[int]) -> None:
    """Write ``path`` into the run once per width (each a new picture, 30 pixels
    high), waiting for the monitor to capture every version as a revision of its own."""
    colours = ["red", "green", "blue", "gray"]
    for count, width in enumerate(widths, 1):
        Path(run_dir, path).write_bytes(png((width, 30), colours[count % len(colours)]))
        wait_for(
            lambda count=count: len(revisions(lab, run_id, path)) == count,
            30,
            f"revision {count} of {path}",
        )


def saved_state(lab: Lab) -> dict[str, Any]:
    """What JupyterLab saved of the default workspace (state DB and layout)."""
    return lab.get("/lab/api/workspaces/default")["data"]


# -- the page -----------------------------------------------------------------


def open_lab(page: Any, lab: Lab) -> None:
    """JupyterLab, once the sidebar's tab is in the left tab bar."""
    from playwright.sync_api import expect

    page.goto(lab.page_url("/lab"))
    tab = page.locator(SIDEBAR_TAB)
    expect(tab).to_have_attribute("title", "Guild Images: runs and their images", timeout=60_000)


def open_sidebar(page: Any) -> None:
    """A click on the sidebar's tab, as a user opens it."""
    from playwright.sync_api import expect

    page.locator(SIDEBAR_TAB).click()
    expect(page.locator(SIDEBAR)).to_be_visible()


def listed(page: Any) -> list[str]:
    """The run ids the sidebar lists, top to bottom."""
    return page.locator(RUNS).evaluate_all("items => items.map(item => item.dataset.runId)")


def select_run(page: Any, run_id: str) -> None:
    from playwright.sync_api import expect

    item = page.locator(f'{RUNS}[data-run-id="{run_id}"]')
    item.click()
    expect(item).to_have_class(re.compile(r"\bjp-mod-selected\b"))


def wait_for_natural_width(page: Any, selector: str, width: int) -> None:
    """Wait until the image ``selector`` shows a picture ``width`` pixels wide."""
    page.wait_for_function(
        """([selector, width]) => {
            const image = document.querySelector(selector);
            return image !== null && image.complete && image.naturalWidth === width;
        }""",
        arg=[selector, width],
        timeout=30_000,
    )


def assert_no_errors(chromium: Browser, known: tuple[str, ...] = ()) -> None:
    """No uncaught error in the page (but ``known`` ones, not the extension's), and
    no console error that names the extension."""
    ours = [e for e in chromium.errors if not e.startswith(known) or "guildimg" in e.lower()]
    assert not ours, chromium.errors
    ours = [text for text in chromium.console_errors if "guildimg" in text.lower()]
    assert not ours, ours


# -- the tests ----------------------------------------------------------------


def test_sidebar_runs_thumbnails_and_image_tab(
    lab: Lab, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    demo = make_demo_runs(str(guild_home), 3)
    wait_for_runs(lab, 3)
    # Newest first, once each run's start is read (events may show a run mid-creation).
    newest_first = [run.id for run in demo]

    def in_order() -> list[dict[str, Any]] | None:
        listed = api_runs(lab)
        return listed if [run["id"] for run in listed] == newest_first else None

    runs = wait_for(in_order, 10, "the runs newest first")
    assert [run["started"] for run in runs] == sorted((r["started"] for r in runs), reverse=True)
    # An image with three revisions in the newest run (40, 60, then 80 pixels wide),
    # and the same path in the second run, to compare with.
    write_revisions(lab, runs[0]["id"], demo[0].dir, "progress.png", [40, 60, 80])
    write_revisions(lab, runs[1]["id"], demo[1].dir, "progress.png", [50])
    runs = api_runs(lab)

    open_lab(page, lab)
    open_sidebar(page)

    # Every run, newest first, with its short id, operation, label and image count.
    expect(page.locator(RUNS)).to_have_count(3, timeout=30_000)
    assert listed(page) == [run["id"] for run in runs]
    for run in runs:
        item = page.locator(f'{RUNS}[data-run-id="{run["id"]}"]')
        expect(item.locator(".guildimg-run-short")).to_have_text(run["short_id"])
        expect(item.locator(".guildimg-run-op")).to_have_text("train")
        # The row shows the flags that differ between runs; the whole label on hover.
        expect(item.locator(".guildimg-run-label")).to_have_attribute("title", run["label"])
        expect(item.locator(".guildimg-run-count")).to_have_text(f"{run['image_count']} images")
        expect(item).to_have_attribute("data-status", "completed")
    assert runs[0]["image_count"] == 4  # the demo's three and progress.png

    # Selecting the newest run shows a loaded thumbnail of each of its images.
    select_run(page, runs[0]["id"])
    paths = [image["path"] for image in lab.api(f"runs/{runs[0]['id']}/images")["images"]]
    expect(page.locator(THUMB_ITEMS)).to_have_count(len(paths), timeout=30_000)
    assert page.locator(THUMB_ITEMS).evaluate_all("b => b.map(i => i.dataset.path)") == paths
    all_loaded(page, THUMBS)
    progress = page.locator(f'{THUMB_ITEMS}[data-path="progress.png"]')
    newest_first = revisions(lab, runs[0]["id"], "progress.png")
    expect(progress).to_have_attribute("data-revision", str(newest_first[0]))
    screenshot(page, "lab-sidebar")

    # The thumbnail opens the image tab at its newest revision.
    progress.click()
    viewer = page.locator(VIEWER)
    expect(viewer).to_be_visible(timeout=30_000)
    expect(viewer.locator(".guildimg-viewer-path")).to_have_text("progress.png")
    first_image = f'{VIEWER} .guildimg-viewer-column[data-run-id="{runs[0]["id"]}"] img'
    wait_for_natural_width(page, first_image, 80)
    slider = viewer.locator("input[type=range].guildimg-viewer-slider")
    meta = viewer.locator(".guildimg-viewer-meta")
    expect(slider).to_have_attribute("max", "2")
    expect(slider).to_have_value("2")
    expect(meta).to_have_attribute("data-revision", str(newest_first[0]))
    expect(meta).to_contain_text("revision 3 of 3 · 80×30")

    # The slider goes back through the revisions, picture and details.
    slider.fill("0")
    expect(meta).to_have_attribute("data-revision", str(newest_first[2]))
    expect(meta).to_contain_text("revision 1 of 3 · 40×30")
    wait_for_natural_width(page, first_image, 40)
    slider.fill("1")
    expect(meta).to_contain_text("revision 2 of 3 · 60×30")
    wait_for_natural_width(page, first_image, 60)

    # Compare: only the other run with progress.png is offered; it adds a column.
    compare = viewer.locator("select.guildimg-viewer-compare")
    offered = compare.locator("option:not([value=''])")
    expect(offered).to_have_count(1, timeout=30_000)
    expect(offered).to_have_attribute("value", runs[1]["id"])
    compare.select_option(runs[1]["id"])
    columns = viewer.locator(".guildimg-viewer-column")
    expect(columns).to_have_count(2)
    assert columns.evaluate_all("c => c.map(i => i.dataset.runId)") == [
        runs[0]["id"],
        runs[1]["id"],
    ]
    wait_for_natural_width(page, f'{VIEWER} [data-run-id="{runs[1]["id"]}"] img', 50)
    expect(columns.nth(1).locator(".guildimg-viewer-meta")).to_contain_text("1 of 1 · 50×30")
    expect(viewer.locator(".guildimg-viewer-error:visible")).to_have_count(0)
    screenshot(page, "lab-image")
    assert_no_errors(chromium)


def test_sidebar_follows_new_images_and_runs(lab: Lab, chromium: Browser, guild_home: Path) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    run_dir = write_run(guild_home, op="train", label="first", files={"a.png": png((32, 32))})
    (run,) = wait_for_runs(lab, 1)
    open_lab(page, lab)
    open_sidebar(page)
    select_run(page, run["id"])
    expect(page.locator(THUMB_ITEMS)).to_have_count(1, timeout=30_000)
    all_loaded(page, THUMBS)

    # A new image in the selected run appears by itself, within 3 s.
    Path(run_dir, "fresh.png").write_bytes(png((48, 32), "green"))
    expect(page.locator(f'{THUMB_ITEMS}[data-path="fresh.png"]')).to_be_visible(timeout=3_000)
    expect(page.locator(THUMB_ITEMS)).to_have_count(2)
    all_loaded(page, THUMBS)
    item = page.locator(f'{RUNS}[data-run-id="{run["id"]}"]')
    expect(item.locator(".guildimg-run-count")).to_have_text("2 images")

    # A new run appears at the top of the list, the selection staying put.
    write_run(guild_home, op="evaluate", label="second", files={"b.png": png()})
    expect(page.locator(RUNS)).to_have_count(2, timeout=10_000)
    newest = page.locator(RUNS).first
    expect(newest.locator(".guildimg-run-op")).to_have_text("evaluate")
    assert listed(page) == [r["id"] for r in api_runs(lab)]
    expect(item).to_have_class(re.compile(r"\bjp-mod-selected\b"))
    screenshot(page, "lab-live")

    # An open image follows its new revisions while its slider is at the newest,
    # and stays on the revision the user chose otherwise.
    page.locator(f'{THUMB_ITEMS}[data-path="fresh.png"]').click()
    meta = page.locator(f"{VIEWER} .guildimg-viewer-meta")
    expect(meta).to_contain_text("revision 1 of 1", timeout=30_000)
    Path(run_dir, "fresh.png").write_bytes(png((64, 32), "blue"))
    expect(meta).to_contain_text("revision 2 of 2", timeout=10_000)
    wait_for_natural_width(page, f"{VIEWER} img.guildimg-viewer-image", 64)
    slider = page.locator(f"{VIEWER} input.guildimg-viewer-slider")
    slider.fill("0")
    expect(meta).to_contain_text("revision 1 of 2")
    Path(run_dir, "fresh.png").write_bytes(png((80, 32), "red"))
    expect(meta).to_contain_text("revision 1 of 3", timeout=10_000)
    expect(slider).to_have_attribute("max", "2")
    wait_for_natural_width(page, f"{VIEWER} img.guildimg-viewer-image", 48)
    assert_no_errors(chromium)


def test_runs_that_could_not_be_read_are_read_again_without_a_change(
    lab: Lab, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    write_run(guild_home, op="train", label="first", files={"a.png": png()})
    wait_for_runs(lab, 1)
    open_lab(page, lab)
    open_sidebar(page)
    expect(page.locator(RUNS)).to_have_count(1, timeout=30_000)

    # The next read of the runs fails (a proxy's hiccup), as a new run appears.
    failed: list[str] = []

    def fail_once(route: Any) -> None:
        if failed:
            route.continue_()
            return
        failed.append(route.request.url)
        route.fulfill(status=502, body="Bad Gateway")

    page.route(re.compile(r".*/guildimg/api/runs(\?.*)?$"), fail_once)
    write_run(guild_home, op="evaluate", label="second", files={"b.png": png()})
    wait_for_runs(lab, 2)
    # Playwright runs the route's handler while this thread is in one of its calls.
    wait_for(lambda: page.wait_for_timeout(50) or failed, 30, "the read that fails")
    # Nothing changes any more: the sidebar reads the runs again by itself.
    expect(page.locator(RUNS)).to_have_count(2, timeout=15_000)
    assert listed(page) == [r["id"] for r in api_runs(lab)]
    assert chromium.errors == []


def test_open_tensorboard_button(lab: Lab, chromium: Browser, guild_home: Path) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    write_run(guild_home, op="train", label="tb", files={"a.png": png((32, 32))})
    (run,) = wait_for_runs(lab, 1)
    open_lab(page, lab)
    open_sidebar(page)
    page.locator(f"{SIDEBAR} button.guildimg-sidebar-open-tb").click()

    # A main-area tab that starts TensorBoard and then shows its page, proxied.
    tab = page.locator(TENSORBOARD_TAB)
    expect(tab).to_be_visible(timeout=30_000)
    view = tab.locator(".guildimg-tensorboard")
    expect(view).to_have_attribute("data-status", "ready", timeout=120_000)
    iframe = view.locator(".guildimg-tensorboard-frame iframe")
    src = iframe.get_attribute("src")
    assert src is not None and src.split("?")[0] == f"{lab.url}/guildimg/tensorboard/", src
    frame = page.frame_locator(f"{TENSORBOARD_TAB} .guildimg-tensorboard-frame iframe")
    expect(frame.locator("tb-webapp")).to_be_attached(timeout=60_000)
    expect(frame.get_by_text(run["short_id"]).first).to_be_visible(timeout=60_000)
    (tensorboard,) = [f for f in page.frames if "/guildimg/tensorboard/" in f.url]
    assert tensorboard.title() == "TensorBoard"
    expect(page.locator(f"{SIDEBAR} .guildimg-sidebar-tb")).to_have_attribute(
        "data-status", "ready"
    )
    screenshot(page, "lab-tensorboard")

    # The tab comes back after a reload (once JupyterLab has saved its workspace).
    wait_for(lambda: "guildimg-tensorboard:tensorboard" in saved_state(lab), 30, "the saved layout")
    page.reload()
    expect(frame.locator("tb-webapp")).to_be_attached(timeout=60_000)
    expect(page.locator(f"{TENSORBOARD_TAB} .guildimg-tensorboard")).to_have_attribute(
        "data-status", "ready"
    )
    assert_no_errors(chromium)


def checkbox(page: Any, run_id: str) -> Any:
    """The "in TensorBoard" checkbox of a run's row."""
    return page.locator(f'{RUNS}[data-run-id="{run_id}"] input.guildimg-run-tb')


def test_in_tensorboard_checkboxes_and_the_tabs_count(
    lab: Lab, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    for label in ("alpha", "beta", "gamma"):
        write_run(guild_home, op="train", label=label, files={f"{label}.png": png()})
    runs = wait_for_runs(lab, 3)
    ids = [run["id"] for run in runs]
    assert lab.api("selection")["mode"] == "auto"
    open_lab(page, lab)
    open_sidebar(page)
    expect(page.locator(RUNS)).to_have_count(3, timeout=30_000)
    # The policy shows every run while there are few: every box is checked.
    for run_id in ids:
        expect(checkbox(page, run_id)).to_be_checked()
    selection_text = page.locator(f"{SIDEBAR} .guildimg-sidebar-selection-text")
    expect(selection_text).to_have_text("In TensorBoard: 3 of 3 runs")
    expect(page.locator(f"{SIDEBAR} button.guildimg-sidebar-auto")).to_be_disabled()

    page.locator(f"{SIDEBAR} button.guildimg-sidebar-open-tb").click()
    view = page.locator(f"{TENSORBOARD_TAB} .guildimg-tensorboard")
    count = view.locator(".guildimg-tensorboard-count")
    expect(count).to_have_text("3 of 3 runs", timeout=30_000)
    expect(view.locator(".guildimg-tensorboard-rule")).to_contain_text("auto")

    # Unchecking a row's box: TensorBoard shows the other two, and the row is not
    # selected by the click.
    with page.expect_response(
        lambda r: (
            r.url.split("?")[0].endswith("/guildimg/api/selection") and r.request.method == "PUT"
        )
    ):
        checkbox(page, ids[1]).click()
    wait_for(
        # As sets: the order of ids was read while the runs were being made.
        lambda: (
            (s := lab.api("selection"))["mode"] == "runs" and set(s["runs"]) == {ids[0], ids[2]}
        ),
        10,
        "the selection without the unchecked run",
    )
    expect(count).to_have_text("2 of 3 runs")
    expect(view.locator(".guildimg-tensorboard-rule")).to_contain_text("chosen runs")
    expect(checkbox(page, ids[1])).not_to_be_checked()
    expect(selection_text).to_have_text("In TensorBoard: 2 of 3 runs")
    expect(page.locator(f"{RUNS}.jp-mod-selected")).to_have_count(0)
    shown = {run["id"]: run["in_tensorboard"] for run in api_runs(lab)}
    assert shown == {ids[0]: True, ids[1]: False, ids[2]: True}
    # A click elsewhere on the row still selects it.
    select_run(page, ids[1])
    expect(checkbox(page, ids[1])).not_to_be_checked()

    # From the keyboard: "t" on a focused row checks its box again.
    row = page.locator(f'{RUNS}[data-run-id="{ids[1]}"]')
    row.focus()
    page.keyboard.press("t")
    expect(checkbox(page, ids[1])).to_be_checked()
    expect(count).to_have_text("3 of 3 runs")
    # The arrows move the focus to the next row, as the sidebar lists them now.
    order = page.locator(RUNS).evaluate_all("rows => rows.map(r => r.dataset.runId)")
    at = order.index(ids[1])
    key, after = ("ArrowDown", order[at + 1]) if at + 1 < len(order) else ("ArrowUp", order[at - 1])
    page.keyboard.press(key)
    expect(page.locator(f'{RUNS}[data-run-id="{after}"]')).to_be_focused()

    # "Only these": the runs the filter lists; "Add filtered runs": those too.
    by_label = {run["label"]: run["id"] for run in runs}
    gamma, alpha = by_label["gamma"], by_label["alpha"]
    filter_box = page.locator(f"{SIDEBAR} input.guildimg-sidebar-filter")
    filter_box.fill("gamma")
    expect(page.locator(RUNS)).to_have_count(1)
    expect(page.locator(RUNS)).to_have_attribute("data-run-id", gamma)
    page.locator(f"{SIDEBAR} button.guildimg-sidebar-only").click()
    expect(count).to_have_text("1 of 3 runs")
    assert lab.api("selection")["runs"] == [gamma]
    filter_box.fill("alpha")
    expect(page.locator(RUNS)).to_have_attribute("data-run-id", alpha)
    page.locator(f"{SIDEBAR} button.guildimg-sidebar-add-filtered").click()
    expect(count).to_have_text("2 of 3 runs")
    assert set(lab.api("selection")["runs"]) == {gamma, alpha}
    filter_box.fill("")
    expect(page.locator(RUNS)).to_have_count(3)
    checked = page.locator(f"{RUNS} input.guildimg-run-tb:checked")
    expect(checked).to_have_count(2)
    screenshot(page, "lab-sidebar-selection", scroll_to=SIDEBAR)

    # "change" on the TensorBoard tab takes the keyboard to the sidebar's runs.
    page.locator(f"{SIDEBAR_TAB}").click()  # close the sidebar: "change" opens it
    expect(page.locator(SIDEBAR)).to_be_hidden()
    view.locator("button.guildimg-tensorboard-change").click()
    expect(page.locator(SIDEBAR)).to_be_visible()
    expect(page.locator(f'{RUNS}[data-run-id="{ids[1]}"]')).to_be_focused()

    # "Auto": back to the policy.
    page.locator(f"{SIDEBAR} button.guildimg-sidebar-auto").click()
    expect(count).to_have_text("3 of 3 runs")
    assert lab.api("selection")["mode"] == "auto"
    expect(checked).to_have_count(3)
    expect(view).to_have_attribute("data-status", "ready", timeout=120_000)
    screenshot(page, "lab-tensorboard-selection")
    assert_no_errors(chromium)


def test_the_tensorboard_tab_warns_of_too_few_open_files(
    tmp_path: Path, chromium: Browser, guild_home: Path
) -> None:
    """A server whose hard limit is 512 open files, and runs whose images need more
    event files than that: the TensorBoard tab says so with the fix, and the warning
    goes once fewer runs are shown."""
    from playwright.sync_api import expect

    runs, images = 6, 90  # 540 event files (a run summarizes at most 100 images)
    for number in range(runs):
        files = {f"{number}/{i:03}.png": png() for i in range(images)}
        write_run(guild_home, op="train", label=f"run {number}", files=files)
    low_limit = "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))\n"
    with jupyter("lab", tmp_path, guild_home, extra_config=low_limit) as lab:
        wait_for(lambda: lab.api("status")["monitor"]["images"] == runs * images, 60, "every image")
        wait_for(lambda: lab.api("tensorboard")["warnings"], 30, "the open-files warning")
        page = chromium.page
        open_lab(page, lab)
        open_sidebar(page)
        page.locator(f"{SIDEBAR} button.guildimg-sidebar-open-tb").click()
        view = page.locator(f"{TENSORBOARD_TAB} .guildimg-tensorboard")
        warnings = view.locator(".guildimg-tensorboard-warnings")
        expect(warnings).to_contain_text("TensorBoard needs about", timeout=30_000)
        expect(warnings).to_contain_text("may open only 512")
        expect(warnings).to_contain_text("ulimit -Hn")
        sidebar_warnings = page.locator(f"{SIDEBAR} .guildimg-sidebar-tb-warnings")
        expect(sidebar_warnings).to_contain_text("may open only 512")
        expect(view.locator(".guildimg-tensorboard-count")).to_have_text("6 of 6 runs")
        screenshot(page, "lab-tensorboard-warning")

        # One run shown: few enough files, no such warning (TensorBoard's own lines
        # about files it could not open, if any, stay until it restarts).
        newest = api_runs(lab)[0]["id"]
        select_run(page, newest)
        page.locator(f"{SIDEBAR} button.guildimg-sidebar-only").click()
        expect(view.locator(".guildimg-tensorboard-count")).to_have_text("1 of 6 runs")
        expect(warnings).not_to_contain_text("TensorBoard needs about", timeout=30_000)
        expect(sidebar_warnings).not_to_contain_text("TensorBoard needs about")
    assert_no_errors(chromium)


def test_a_tensorboard_that_cannot_start_shows_why_and_a_retry(
    tmp_path: Path, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    bad_flag = "c.GuildImgApp.tensorboard_args = ['--no_such_flag=1']\n"
    with jupyter("lab", tmp_path, guild_home, extra_config=bad_flag) as lab:
        page = chromium.page
        open_lab(page, lab)
        open_sidebar(page)
        # No runs yet: the sidebar says so, and lists what it watches.
        message = page.locator(f"{SIDEBAR} .guildimg-sidebar-message")
        expect(message).to_contain_text("No runs yet in the watched sources")
        expect(page.locator(f"{SIDEBAR} .guildimg-sources-list")).to_contain_text(str(guild_home))
        page.locator(f"{SIDEBAR} button.guildimg-sidebar-open-tb").click()
        view = page.locator(f"{TENSORBOARD_TAB} .guildimg-tensorboard")
        expect(view).to_have_attribute("data-status", "failed", timeout=120_000)
        status = view.locator(".guildimg-tensorboard-status")
        # TensorBoard's own complaint, not a generic message; and no page in the frame.
        expect(status).to_contain_text("TensorBoard failed")
        expect(status).to_contain_text("no_such_flag")
        expect(view.locator(".guildimg-tensorboard-frame")).to_be_hidden()
        expect(page.locator(f"{SIDEBAR} .guildimg-sidebar-tb")).to_have_attribute(
            "data-status", "failed"
        )
        screenshot(page, "lab-tensorboard-failed")

        # Retry asks the server to start it again (and says so again when it fails).
        retry = status.locator("button.guildimg-tensorboard-retry")
        with page.expect_response(
            lambda r: (
                r.url.split("?")[0].endswith("/guildimg/api/tensorboard")
                and r.request.method == "POST"
            ),
            timeout=120_000,
        ) as started:
            retry.click()
        assert started.value.json()["status"] == "failed"
        expect(view).to_have_attribute("data-status", "failed")
        expect(retry).to_be_enabled()
    assert_no_errors(chromium)


def test_without_the_server_extension_the_sidebar_says_so(
    tmp_path: Path, chromium: Browser, guild_home: Path
) -> None:
    """The frontend installed but the server extension off (or in another
    environment): a clear message, not an empty list, and Lab keeps working."""
    from playwright.sync_api import expect

    write_run(guild_home, op="train", label="unseen", files={"a.png": png()})
    disabled = "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': False}\n"
    with jupyter("lab", tmp_path, guild_home, extra_config=disabled) as lab:
        with pytest.raises(urllib.error.HTTPError) as missing:  # nothing of ours answers
            lab.get("/guildimg/api/runs")
        missing.value.close()  # an HTTPError holds its response open
        assert missing.value.code == 404
        page = chromium.page
        open_lab(page, lab)
        open_sidebar(page)
        message = page.locator(f"{SIDEBAR} .guildimg-sidebar-message")
        expect(message).to_contain_text("server extension does not answer", timeout=30_000)
        expect(message).to_contain_text("jupyter server extension list")
        expect(page.locator(RUNS)).to_have_count(0)
        screenshot(page, "lab-no-server-extension")
    # Our requests' 404s are the only console errors: none is a page error.
    assert not chromium.errors, chromium.errors


def test_filter_and_selection_survive_a_reload(
    lab: Lab, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    for label in ("alpha", "beta", "gamma"):
        write_run(guild_home, op="train", label=label, files={f"{label}.png": png()})
    runs = wait_for_runs(lab, 3)
    (beta,) = [run for run in runs if run["label"] == "beta"]
    open_lab(page, lab)
    open_sidebar(page)
    expect(page.locator(RUNS)).to_have_count(3, timeout=30_000)

    page.locator(f"{SIDEBAR} input.guildimg-sidebar-filter").fill("beta")
    expect(page.locator(RUNS)).to_have_count(1)
    assert listed(page) == [beta["id"]]
    select_run(page, beta["id"])
    page.locator(f'{THUMB_ITEMS}[data-path="beta.png"]').click()
    expect(page.locator(VIEWER)).to_be_visible(timeout=30_000)

    # JupyterLab saves its workspace a moment after a change; reload once it has.
    def saved() -> bool:
        data = saved_state(lab)
        left = data.get("layout-restorer:data", {}).get("left", {})
        return (
            {**data.get(STATE_KEY, {}), "selected": beta["id"], "filter": "beta"}
            == data.get(STATE_KEY)
            and left.get("current") == "guildimg-sidebar"
            and f"guildimg-image:{beta['id']}:beta.png" in data
        )

    wait_for(saved, 30, "the workspace to be saved")
    page.reload()

    # Open again without a click, with the filter and the selected run's images.
    expect(page.locator(SIDEBAR)).to_be_visible(timeout=60_000)
    expect(page.locator(f"{SIDEBAR} input.guildimg-sidebar-filter")).to_have_value("beta")
    expect(page.locator(RUNS)).to_have_count(1, timeout=30_000)
    selected = page.locator(f"{RUNS}.jp-mod-selected")
    expect(selected).to_have_attribute("data-run-id", beta["id"])
    expect(page.locator(f'{THUMB_ITEMS}[data-path="beta.png"]')).to_be_visible(timeout=30_000)
    all_loaded(page, THUMBS)
    # And the image tab.
    expect(page.locator(f"{VIEWER} .guildimg-viewer-path")).to_have_text("beta.png")
    wait_for_natural_width(page, f"{VIEWER} img.guildimg-viewer-image", 16)
    screenshot(page, "lab-restored")
    assert_no_errors(chromium)


def palette_search(page: Any, search: str) -> Any:
    """The command palette's entries for ``search``."""
    from playwright.sync_api import expect

    entry = page.locator(".lm-CommandPalette-input")
    if not entry.is_visible():  # the shortcut toggles it
        page.keyboard.press("Control+Shift+C")
    expect(entry).to_be_visible()
    entry.fill(search)
    return page.locator(".lm-CommandPalette-item .lm-CommandPalette-itemLabel")


def test_palette_commands(lab: Lab, chromium: Browser, guild_home: Path) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    write_run(guild_home, op="train", label="palette", files={"a.png": png()})
    (run,) = wait_for_runs(lab, 1)
    open_lab(page, lab)
    # The palette is a modal that closes when it loses focus: wait for the focus
    # JupyterLab gives its launcher once it has restored a fresh layout.
    page.wait_for_function("document.activeElement?.closest('.jp-Launcher') != null")

    labels = palette_search(page, "Guild Images")
    for command in ("Open TensorBoard", "Refresh runs", "Show runs"):
        expect(labels.filter(has_text=f"Guild Images: {command}")).to_have_count(1)
    screenshot(page, "lab-palette")

    # Refresh runs: a monitor pass on the server, and no error.
    with page.expect_response(
        lambda r: (
            r.url.split("?")[0].endswith("/guildimg/api/refresh") and r.request.method == "POST"
        )
    ) as refreshed:
        palette_search(page, "Guild Images: Refresh runs").first.click()
    assert refreshed.value.status == 200

    # Show runs: the sidebar, listing the run.
    palette_search(page, "Guild Images: Show runs").first.click()
    expect(page.locator(SIDEBAR)).to_be_visible()
    expect(page.locator(RUNS)).to_have_count(1, timeout=30_000)
    assert listed(page) == [run["id"]]
    assert_no_errors(chromium)


# Notebook 7.6's own error on its /tree page, with this extension disabled too: its
# shortcuts plugin reads the schema of settings that the tree page never loads.
NOTEBOOK_OWN_ERROR = "TypeError: Cannot read properties of undefined (reading 'schema')"


def test_notebook7_loads_cleanly_with_the_sidebar(
    notebook7: Lab, chromium: Browser, guild_home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    write_run(guild_home, op="train", label="nb7", files={"a.png": png()})
    (run,) = wait_for_runs(notebook7, 1)
    page.goto(notebook7.page_url("/tree"))
    expect(page.locator(".jp-DirListing")).to_be_visible(timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp?.commands.hasCommand('guildimg:show-sidebar')",
        timeout=60_000,
    )

    # Notebook 7 has a left area too: the sidebar opens there and lists the run.
    page.evaluate("() => window.jupyterapp.commands.execute('guildimg:show-sidebar')")
    expect(page.locator(SIDEBAR)).to_be_visible(timeout=30_000)
    expect(page.locator(RUNS)).to_have_count(1, timeout=30_000)
    assert listed(page) == [run["id"]]
    select_run(page, run["id"])
    all_loaded(page, THUMBS)
    screenshot(page, "lab-notebook7")

    assert_no_errors(chromium, known=(NOTEBOOK_OWN_ERROR,))


# -- the package --------------------------------------------------------------


def test_the_installed_package_carries_the_enabled_extension() -> None:
    """``pip install`` put the built sidebar where JupyterLab finds it, enabled and
    OK, at the Python package's version (no separate npm step for users)."""
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert re.search(r"jupyter-guildimg v\S+ enabled OK \(python, jupyter_guildimg\)", text), text
    built = Path(__file__).parents[2] / "jupyter_guildimg" / "labextension" / "package.json"
    assert json.loads(built.read_text())["version"] == __version__
