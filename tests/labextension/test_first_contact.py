"""A new user's first contact with the JupyterLab extension (issue 14), in headless
Chromium on one real JupyterLab server for the module: the watched sources in the
sidebar (add a folder and its runs appear, remove it and they go, a bad path shows
the server's refusal), run rows that read cleanly (differing flags, whole label on
hover, a filter placeholder that fits, multi-select), the selected row readable in
the dark theme (computed colours, WCAG AA), TensorBoard's page loaded without a 404
and in Lab's theme, a restored TensorBoard tab that starts nothing until shown, and
the demo's live run moving the image tab's revision slider.
Screenshots, light and dark, go to test-output/first-*.png."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg.guild.demo import LIVE_LABEL, start_live_run
from jupyter_guildimg.guild.project import write_run

from browser import REPO, Browser, Lab, jupyter, screenshot
from helpers import png, wait_for

pytestmark = pytest.mark.browser

SIDEBAR = "#guildimg-sidebar"
SIDEBAR_TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="guildimg-sidebar"]'
RUNS = f"{SIDEBAR} li.guildimg-run"
SOURCES = f"{SIDEBAR} details.guildimg-sources"
TENSORBOARD_TAB = "#guildimg-tensorboard-tab"
TB_VIEW = f"{TENSORBOARD_TAB} .guildimg-tensorboard"
TB_FRAME = f"{TENSORBOARD_TAB} .guildimg-tensorboard-frame iframe"
DARK = "JupyterLab Dark"
LIGHT = "JupyterLab Light"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's Guild home (the server's one configured source)."""
    return tmp_path_factory.mktemp("first-contact-home")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[Lab]:
    """One JupyterLab for the module, its app on ``window.jupyterapp`` (for the
    theme command and the registered commands), loading the extension as built
    from this checkout (its own data dir comes first: an older copy installed in
    the environment's ``share/jupyter/labextensions`` would win otherwise)."""
    tmp = tmp_path_factory.mktemp("first-contact-lab")
    extensions = tmp / "jupyter" / "data" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "jupyter-guildimg").symlink_to(REPO / "jupyter_guildimg" / "labextension")
    with jupyter(
        "lab",
        tmp,
        home,
        "c.LabApp.expose_app_in_browser = True\n",
    ) as lab:
        yield lab


# -- helpers ------------------------------------------------------------------


def call(lab: Lab, method: str, path: str) -> Any:
    """``METHOD <base_url>guildimg/api/<path>`` with the token (no XSRF needed)."""
    request = urllib.request.Request(
        f"{lab.url}/guildimg/api/{path}",
        method=method,
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        data=b"{}" if method == "POST" else None,
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def runs_by_label(lab: Lab) -> dict[str, dict[str, Any]]:
    return {run["label"]: run for run in lab.api("runs")["runs"]}


def open_lab(page: Any, lab: Lab, theme: str = LIGHT) -> None:
    """JupyterLab in ``theme``, with the Guild Images sidebar open."""
    from playwright.sync_api import expect

    page.goto(lab.page_url("/lab"))
    expect(page.locator(SIDEBAR_TAB)).to_be_visible(timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands", timeout=60_000)
    set_theme(page, theme)
    if not page.locator(SIDEBAR).is_visible():
        page.locator(SIDEBAR_TAB).click()
    expect(page.locator(SIDEBAR)).to_be_visible()


def set_theme(page: Any, theme: str) -> None:
    """Lab's theme command, as the Settings menu runs it; waits until it is applied."""
    light = "true" if theme == LIGHT else "false"
    page.evaluate(
        "theme => window.jupyterapp.commands.execute('apputils:change-theme', { theme })", theme
    )
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === light", arg=light, timeout=30_000
    )
    page.wait_for_timeout(300)  # the theme's stylesheet applied


def row(page: Any, run_id: str) -> Any:
    return page.locator(f'{RUNS}[data-run-id="{run_id}"]')


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# The text colours of a row's visible parts and the colour behind them, each alpha
# composited over what lies below (up to the page's opaque background).
ROW_COLOURS = """item => {
    const parse = text => {
        const m = text.match(/rgba?\\(([^)]+)\\)/);
        if (!m) return [0, 0, 0, 0];
        const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
        return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const over = (top, below) => {
        const a = top[3];
        return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]);
    };
    const background = node => {
        const layers = [];
        for (let n = node; n; n = n.parentElement) {
            const c = parse(getComputedStyle(n).backgroundColor);
            if (c[3] > 0) layers.push(c);
            if (c[3] >= 1) break;
        }
        let colour = [255, 255, 255, 1];
        for (const layer of layers.reverse()) colour = over(layer, colour);
        return colour;
    };
    return [...item.querySelectorAll('span')]
        .filter(s => s.textContent.trim() && s.offsetParent !== null)
        .map(s => {
            const back = background(s);
            return {
                text: s.textContent,
                fg: over(parse(getComputedStyle(s).color), back).slice(0, 3),
                bg: back.slice(0, 3),
            };
        });
}"""


def assert_readable(item: Any) -> list[float]:
    """Every text of ``item`` against its background: WCAG AA (4.5:1) at least."""
    ratios = []
    for part in item.evaluate(ROW_COLOURS):
        ratio = contrast(tuple(part["fg"]), tuple(part["bg"]))
        assert ratio >= 4.5, f"{part['text']!r}: {ratio:.2f}:1 ({part['fg']} on {part['bg']})"
        ratios.append(ratio)
    assert ratios, "no text in the row"
    return ratios


# -- the tests ----------------------------------------------------------------


def test_watched_sources_add_remove_and_a_refusal(
    server: Lab, chromium: Browser, home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    write_run(home, op="train", label="guild-run", files={"a.png": png()})
    mine = server.root / "mine"
    for name in ("exp1", "exp2"):
        (mine / name).mkdir(parents=True)
        (mine / name / "sample.png").write_bytes(png((24, 24), "green"))
    wait_for(lambda: "guild-run" in runs_by_label(server), 30, "the Guild run")
    open_lab(page, server)

    # The one configured source, listed; the section opens with a click.
    sources = page.locator(SOURCES)
    expect(sources.locator("summary")).to_have_text("Watching 1 source", timeout=30_000)
    if not sources.evaluate("d => d.open"):
        sources.locator("summary").click()
    items = sources.locator("li.guildimg-source")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-path", str(home))

    # A path that is no folder: the server's 400 message, under the field.
    field = sources.locator("input.guildimg-sources-input")
    field.fill("no-such-folder")
    sources.locator("button.guildimg-sources-add-button").click()
    error = sources.locator(".guildimg-sources-error")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text("no-such-folder")
    expect(items).to_have_count(1)

    # A folder relative to the root directory: watched, and its runs listed.
    field.fill("mine")
    sources.locator("button.guildimg-sources-add-button").click()
    expect(items).to_have_count(2, timeout=30_000)
    expect(error).to_be_hidden()
    added = sources.locator(f'li.guildimg-source[data-path="{mine}"]')
    expect(added.locator(".guildimg-source-label")).to_have_text("mine")
    assert str(mine) in server.api("sources")["sources"]
    wait_for(lambda: len(server.api("runs")["runs"]) >= 3, 30, "the folder's runs")
    dir_runs = [r for r in server.api("runs")["runs"] if r["source"] == str(mine)]
    assert len(dir_runs) == 2, dir_runs
    for run in dir_runs:
        expect(row(page, run["id"])).to_be_visible(timeout=30_000)

    # A run with no operation: "exp1: 1 image", no space before the colon.
    row(page, dir_runs[0]["id"]).click()
    title = page.locator(f"{SIDEBAR} .guildimg-sidebar-images-title")
    expect(title).to_contain_text(": 1 image", timeout=30_000)
    assert " :" not in title.inner_text()
    screenshot(page, "first-sources-light", scroll_to=SOURCES)
    set_theme(page, DARK)
    screenshot(page, "first-sources-dark", scroll_to=SOURCES)
    set_theme(page, LIGHT)

    # Remove it (after a confirmation): its runs leave the list.
    added.locator("button.guildimg-source-remove").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(str(mine))
    dialog.get_by_role("button", name="Stop watching").click()
    expect(items).to_have_count(1, timeout=30_000)
    for run in dir_runs:
        expect(row(page, run["id"])).to_have_count(0, timeout=30_000)
    assert str(mine) not in server.api("sources")["sources"]
    assert chromium.errors == []


def test_run_rows_read_cleanly_multi_select_and_dark_contrast(
    server: Lab, chromium: Browser, home: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    labels = [f"delay=0.0 epochs=5 lr=0.{i} optimizer=adam-with-warmup" for i in (1, 2, 3)]
    for label in labels:
        write_run(home, op="train", label=label, files={"grid.png": png((20, 20))})
    wait_for(lambda: all(label in runs_by_label(server) for label in labels), 30, "the runs")
    by_label = runs_by_label(server)
    ids = [by_label[label]["id"] for label in labels]
    open_lab(page, server)

    # Each row shows the flag that differs (lr); the whole label on hover.
    for label, run_id in zip(labels, ids, strict=True):
        label_node = row(page, run_id).locator(".guildimg-run-label")
        expect(label_node).to_have_text(label.split()[2], timeout=30_000)
        expect(label_node).to_have_attribute("title", label)
        expect(row(page, run_id)).to_have_attribute("title", re.compile(re.escape(label)))

    # The filter's placeholder fits in its box.
    fits = page.locator(f"{SIDEBAR} input.guildimg-sidebar-filter").evaluate(
        """input => {
            const style = getComputedStyle(input);
            const context = document.createElement('canvas').getContext('2d');
            context.font = style.font;
            const room = input.clientWidth - parseFloat(style.paddingLeft)
                - parseFloat(style.paddingRight);
            return context.measureText(input.placeholder).width <= room;
        }"""
    )
    assert fits

    # Multi-select: Ctrl-click adds a run, Shift-click a range, Shift+arrow grows it.
    row(page, ids[2]).click()
    row(page, ids[0]).click(modifiers=["Control"])
    selected = page.locator(f'{RUNS}[aria-selected="true"]')
    expect(selected).to_have_count(2)
    compare = page.locator(f"{SIDEBAR} button.guildimg-sidebar-compare")
    registered = page.evaluate(
        "() => window.jupyterapp.commands.hasCommand('guildimg:compare-runs')"
    )
    expect(compare).to_be_visible() if registered else expect(compare).to_be_hidden()
    listed = page.locator(RUNS).evaluate_all("rows => rows.map(r => r.dataset.runId)")
    first, last = sorted((listed.index(ids[0]), listed.index(ids[2])))
    row(page, listed[first]).click()
    row(page, listed[last]).click(modifiers=["Shift"])
    expect(selected).to_have_count(last - first + 1)
    row(page, listed[first]).click()
    row(page, listed[first]).focus()
    page.keyboard.press("Shift+ArrowDown")
    expect(selected).to_have_count(2)
    # "Only these" keeps the selected runs.
    expect(page.locator(f"{SIDEBAR} button.guildimg-sidebar-only")).to_have_attribute(
        "title", "TensorBoard shows only the 2 selected runs"
    )
    row(page, ids[1]).click()
    expect(selected).to_have_count(1)

    # The selected row reads in both themes (WCAG AA for every text in it).
    item = row(page, ids[1])
    light_ratios = assert_readable(item)
    screenshot(page, "first-rows-light", scroll_to=SIDEBAR)
    set_theme(page, DARK)
    dark_ratios = assert_readable(item)
    screenshot(page, "first-rows-dark", scroll_to=SIDEBAR)
    print(f"contrast light {min(light_ratios):.2f}:1, dark {min(dark_ratios):.2f}:1")
    set_theme(page, LIGHT)
    assert chromium.errors == []


def log_404s(lab: Lab, start: int) -> list[str]:
    """The server log's 404 answers after byte ``start``."""
    text = lab.log.read_bytes()[start:].decode(errors="replace")
    return [line for line in text.splitlines() if re.search(r"\b404 (GET|HEAD)\b", line)]


def test_tensorboard_loads_without_404_in_labs_theme(server: Lab, chromium: Browser) -> None:
    from playwright.sync_api import expect

    page = chromium.page
    open_lab(page, server)
    start = server.log.stat().st_size
    page.locator(f"{SIDEBAR} button.guildimg-sidebar-open-tb").click()
    expect(page.locator(TB_VIEW)).to_have_attribute("data-status", "ready", timeout=120_000)
    frame = page.frame_locator(TB_FRAME)
    expect(frame.locator("tb-webapp")).to_be_attached(timeout=60_000)
    expect(frame.locator("body")).to_be_attached()
    # Light Lab: TensorBoard's stored theme is light, and its page is.
    theme = page.evaluate("() => JSON.parse(localStorage.getItem('_tb_global_settings')).theme")
    assert theme == "light"
    expect(frame.locator("body")).not_to_have_class(re.compile(r"\bdark-mode\b"))
    screenshot(page, "first-tensorboard-light")
    assert log_404s(server, start) == []

    # Dark Lab: TensorBoard's page loads again, dark.
    set_theme(page, DARK)
    expect(frame.locator("body")).to_have_class(re.compile(r"\bdark-mode\b"), timeout=60_000)
    theme = page.evaluate("() => JSON.parse(localStorage.getItem('_tb_global_settings')).theme")
    assert theme == "dark"
    src = page.locator(TB_FRAME).get_attribute("src")
    assert src is not None and src.endswith("darkMode=true"), src
    expect(frame.locator("tb-webapp")).to_be_attached(timeout=60_000)
    screenshot(page, "first-tensorboard-dark")
    set_theme(page, LIGHT)
    assert log_404s(server, start) == []
    assert chromium.errors == []


def put_workspace(lab: Lab, data: dict[str, Any]) -> None:
    """Save JupyterLab's default workspace as a page would have left it."""
    body = {"data": data, "metadata": {"id": "default"}}
    request = urllib.request.Request(
        f"{lab.url}/lab/api/workspaces/default",
        method="PUT",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        data=json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def test_a_restored_tensorboard_tab_starts_nothing_until_shown(
    server: Lab, chromium: Browser, home: Path
) -> None:
    """A page reloaded with a TensorBoard tab behind an image tab: TensorBoard is not
    started by the restore, only once its tab is shown."""
    from playwright.sync_api import expect

    write_run(home, op="train", label="restored", files={"a.png": png()})
    wait_for(lambda: "restored" in runs_by_label(server), 60, "the run to be listed")
    run_id = runs_by_label(server)["restored"]["id"]
    call(server, "DELETE", "tensorboard")
    assert server.api("status")["tensorboard"]["status"] == "stopped"

    page = chromium.page
    page.goto("about:blank")  # no open page saves its own layout over the one below
    image_key, tensorboard_key = (
        f"guildimg-image:{run_id}:a.png",
        "guildimg-tensorboard:tensorboard",
    )
    put_workspace(
        server,
        {
            "layout-restorer:data": {
                "main": {
                    "dock": {
                        "type": "tab-area",
                        "currentIndex": 0,
                        "widgets": [image_key, tensorboard_key],
                    },
                    "current": image_key,
                },
                "left": {"collapsed": True, "visible": True, "widgets": []},
            },
            image_key: {"data": {"runId": run_id, "path": "a.png"}},
            tensorboard_key: {"data": {}},
        },
    )
    page.goto(server.page_url("/lab"))
    expect(page.locator(".guildimg-viewer-path")).to_have_text("a.png", timeout=60_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="TensorBoard")
    expect(tab).to_have_count(1, timeout=30_000)
    # Restored in the background: it waits, and says it will start when shown.
    expect(page.locator(TB_VIEW)).to_be_hidden()
    page.wait_for_timeout(3000)  # a start would have been asked for by now
    assert server.api("status")["tensorboard"]["status"] == "stopped"
    screenshot(page, "first-restored-tensorboard-behind")

    tab.click()
    expect(page.locator(TB_VIEW)).to_be_visible()
    wait_for(
        lambda: server.api("status")["tensorboard"]["status"] in ("starting", "ready"),
        30,
        "TensorBoard to be started by its shown tab",
    )
    expect(page.locator(TB_VIEW)).to_have_attribute("data-status", "ready", timeout=120_000)
    assert chromium.errors == []


def test_the_demos_live_run_moves_the_revision_slider(
    server: Lab, chromium: Browser, home: Path
) -> None:
    """The demo's live run rewrites its sample grid every epoch: its image tab's slider
    gains a revision each epoch and, left at the newest, follows it."""
    from playwright.sync_api import expect

    # Longer than the test can take (terminated below): on a loaded machine opening
    # Lab took longer than 8 epochs, and a finished run gains no revision.
    live = start_live_run(str(home), epochs=200, epoch_seconds=1.5)
    try:
        wait_for(lambda: LIVE_LABEL in runs_by_label(server), 60, "the live run to be listed")
        run_id = runs_by_label(server)[LIVE_LABEL]["id"]
        page = chromium.page
        open_lab(page, server)
        page.evaluate(
            "args => window.jupyterapp.commands.execute('guildimg:open-image', args)",
            {"runId": run_id, "path": "samples.png"},
        )
        viewer = page.locator(
            ".guildimg-viewer", has=page.locator(".guildimg-viewer-path", has_text="samples.png")
        )
        slider = viewer.locator(".guildimg-viewer-slider")
        expect(slider).to_be_visible(timeout=60_000)

        def newest() -> int:
            return int(slider.get_attribute("max") or 0)

        first = newest()
        wait_for(lambda: newest() >= first + 2, 60, "two more revisions on the slider")
        # Left at the newest, the slider follows: it is at the end, and says so.
        wait_for(lambda: slider.input_value() == str(newest()), 10, "the slider at the newest")
        meta = viewer.locator(".guildimg-viewer-meta")
        expect(meta).to_contain_text(re.compile(r"revision (\d+) of \1 "))
        screenshot(page, "first-live-run-light")
        set_theme(page, DARK)
        screenshot(page, "first-live-run-dark")
        set_theme(page, LIGHT)
    finally:
        live.terminate()
    assert chromium.errors == []
