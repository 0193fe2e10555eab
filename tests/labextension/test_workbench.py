"""The image workbench (labextension/src/workbench*.ts) in a real browser: JupyterLab
with the extension on real Guild runs whose images are known (made here with Pillow),
driven in headless Chromium. What users rely on: several runs' image side by side
under one slider (by revision and by time), the difference view's figures equal to
Pillow's, swipe and blink by mouse and keyboard, zoom and pan kept in step across
cells with a pixel readout, the shared link and the layout restoring the view, the
PNG export holding the images, and a restored image tab of a run that is gone.
One JupyterLab server for the module; each test its own workspace and browser.
Screenshots go to test-output/workbench-*.png."""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from jupyter_guildimg.guild.project import write_run

from browser import Browser, Lab, jupyter, screenshot
from helpers import wait_for

pytestmark = pytest.mark.browser

BENCH = ".guildimg-wb"
CELLS = f"{BENCH} .guildimg-wb-cell"
PANE = f"{BENCH} .guildimg-wb-pane"
STATS = f"{PANE} .guildimg-wb-stats"
PATH = "samples/img.png"
SIZE = (64, 48)
RED = (200, 40, 40)
GREEN = (30, 180, 60)


# -- the runs -------------------------------------------------------------------


def picture(seed: int, noise: int, square: tuple[int, int, int] | None = None) -> Image.Image:
    """A red picture with ``noise`` pixels of random colours along its border (the
    middle stays red) and, optionally, a 20×16 square of ``square`` in the middle."""
    image = Image.new("RGB", SIZE, RED)
    rng = random.Random(seed)
    for _ in range(noise):
        x, y = rng.randrange(SIZE[0]), rng.randrange(8)
        y = y if rng.random() < 0.5 else SIZE[1] - 1 - y
        image.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    if square:
        image.paste(square, (22, 16, 42, 32))
    return image


def encoded(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def revisions(lab: Lab, run_id: str, path: str = PATH) -> list[dict[str, Any]]:
    """The run's revisions of ``path`` as the API lists them, newest first."""
    for image in lab.api(f"runs/{run_id}/images")["images"]:
        if image["path"] == path:
            return list(image["revisions"])
    return []


def capture(lab: Lab, run_id: str, run_dir: str, pictures: list[Image.Image]) -> None:
    """Write each picture over the run's image in turn, waiting until the monitor
    has captured it as a revision of its own."""
    for count, image in enumerate(pictures, 1):
        if count > 1:
            Path(run_dir, PATH).write_bytes(encoded(image))
        wait_for(lambda c=count: len(revisions(lab, run_id)) == c, 30, f"revision {count}")
        time.sleep(1.1)  # revisions a second apart: the time alignment can tell them


def run_id_of(lab: Lab, label: str) -> str:
    runs = wait_for(lambda: [r for r in lab.api("runs")["runs"] if r["label"] == label], 30, label)
    return str(runs[0]["id"])


class Runs:
    """The module's runs: ``one`` (3 revisions), ``two`` (2), ``small`` (a 32×24 one),
    ``big`` (a 1600×1200 one) and the pictures each revision holds (oldest first)."""

    def __init__(self, lab: Lab, home: Path) -> None:
        self.lab = lab
        self.home = home
        self.pictures: dict[str, list[Image.Image]] = {
            "one": [picture(1, 40), picture(2, 80), picture(3, 120)],
            "two": [picture(4, 60, GREEN), picture(5, 100, GREEN)],
            "small": [Image.new("RGB", (32, 24), (40, 40, 220))],
            "big": [Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")],
        }
        self.ids: dict[str, str] = {}
        self.dirs: dict[str, str] = {}
        for label, pictures in self.pictures.items():
            run_dir = write_run(
                home,
                op="train",
                label=label,
                files={PATH: encoded(pictures[0]), "other.png": encoded(pictures[-1])},
            )
            self.ids[label] = run_id_of(lab, label)
            self.dirs[label] = run_dir
            capture(lab, self.ids[label], run_dir, pictures)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Runs]]:
    """One JupyterLab for the module (its app exposed as ``window.jupyterapp``, for
    the command), with the runs made and captured."""
    tmp = tmp_path_factory.mktemp("workbench")
    home = tmp / "guild-home"
    home.mkdir()
    with jupyter("lab", tmp, home, "c.LabApp.expose_app_in_browser = True\n") as lab:
        yield lab, Runs(lab, home)


# -- the page -------------------------------------------------------------------


def open_lab(page: Any, lab: Lab, workspace: str) -> None:
    """JupyterLab in a workspace of its own, once the workbench's command is there."""
    page.goto(lab.page_url(f"/lab/workspaces/{workspace}"))
    page.wait_for_function(
        "() => window.jupyterapp?.commands.hasCommand('guildimg:compare-runs')", timeout=60_000
    )


def compare(page: Any, runs: list[str], path: str = PATH) -> None:
    """The command the sidebar's "Compare images" runs."""
    page.evaluate(
        "([runs, path]) => window.jupyterapp.commands.execute("
        "'guildimg:compare-runs', {runs, path})",
        [runs, path],
    )
    shown(page, len(runs))


def shown(page: Any, count: int) -> None:
    """Wait until ``count`` cells each show a revision."""
    page.wait_for_function(
        """([selector, count]) => {
            const cells = [...document.querySelectorAll(selector)];
            return cells.length === count && cells.every(c => c.dataset.revision);
        }""",
        arg=[CELLS, count],
        timeout=30_000,
    )


def cell_revisions(page: Any) -> list[int]:
    """The revision counter each cell shows, in order."""
    return [
        int(r) for r in page.locator(CELLS).evaluate_all("cs => cs.map(c => c.dataset.revision)")
    ]


def expect_revisions(page: Any, expected: list[int]) -> None:
    wait_for(lambda: cell_revisions(page) == expected or None, 10, f"revisions {expected}")


def key(page: Any, name: str) -> None:
    page.keyboard.press(name)


def difference_stats(a: Image.Image, b: Image.Image) -> dict[str, float]:
    """The workbench's figures, computed by Pillow: a pixel's difference is the
    largest of its R, G, B, A differences."""
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    bands = diff.split()
    largest = bands[0]
    for band in bands[1:]:
        largest = ImageChops.lighter(largest, band)
    values = list(largest.tobytes())
    return {
        "differing": sum(1 for v in values if v > 0),
        "total": len(values),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def assert_no_errors(chromium: Browser) -> None:
    ours = [e for e in chromium.errors if "guildimg" in e.lower() or "workbench" in e.lower()]
    assert not ours, chromium.errors
    assert not [t for t in chromium.console_errors if "guildimg" in t.lower()]


# -- the tests --------------------------------------------------------------------


def test_one_slider_aligns_runs_by_revision_and_by_time(
    bench: tuple[Lab, Runs], chromium: Browser
) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    one, two, small = runs.ids["one"], runs.ids["two"], runs.ids["small"]
    open_lab(page, lab, "wb-align")
    compare(page, [one, two, small])
    newest = [revisions(lab, r)[0]["revision"] for r in (one, two, small)]
    expect_revisions(page, newest)
    # Different sizes are drawn at a common scale, and the view says so.
    expect(page.locator(f"{BENCH} .guildimg-wb-notice")).to_contain_text("differ in size")
    expect(page.locator(CELLS).first).to_contain_text("revision 3 of 3")
    screenshot(page, "workbench-grid")

    # By revision: ← steps every run back; a run with fewer stays on its last.
    page.locator(BENCH).focus()
    key(page, "ArrowLeft")
    listing = {r: revisions(lab, r)[::-1] for r in (one, two, small)}
    expect_revisions(
        page,
        [listing[one][1]["revision"], listing[two][1]["revision"], listing[small][0]["revision"]],
    )
    key(page, "ArrowLeft")
    expect_revisions(page, [listing[r][0]["revision"] for r in (one, two, small)])
    expect(page.locator(f"{BENCH} .guildimg-wb-position")).to_have_text("revision 1 of 3")
    key(page, "ArrowRight")
    expect(page.locator(f"{BENCH} .guildimg-wb-position")).to_have_text("revision 2 of 3")

    # By time: each run shows its revision nearest the chosen time.
    page.locator(f"{BENCH} .guildimg-wb-align").select_option("time")
    times = sorted({rev["time"] for r in (one, two, small) for rev in listing[r]})
    for stop in (0, 2, len(times) - 2):
        page.locator(f"{BENCH} .guildimg-wb-slider").fill(str(stop))
        chosen = times[stop]
        expected = [
            min(listing[r], key=lambda rev: (abs(rev["time"] - chosen), rev["time"]))["revision"]
            for r in (one, two, small)
        ]
        expect_revisions(page, expected)
    screenshot(page, "workbench-by-time")

    # ↑/↓ move to the run's other image (in the order the API lists them).
    paths = [image["path"] for image in lab.api(f"runs/{one}/images")["images"]]
    page.locator(BENCH).focus()
    key(page, "ArrowDown" if paths.index("other.png") > paths.index(PATH) else "ArrowUp")
    expect(page.locator(f"{BENCH} .guildimg-wb-path")).to_have_value("other.png")
    assert_no_errors(chromium)


def test_difference_swipe_and_blink(bench: tuple[Lab, Runs], chromium: Browser) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    one, two = runs.ids["one"], runs.ids["two"]
    open_lab(page, lab, "wb-pixels")
    compare(page, [one, two])

    # The difference (key d): Pillow's figures for the newest revisions.
    page.locator(BENCH).focus()
    key(page, "d")
    expect(page.locator(BENCH)).to_have_attribute("data-mode", "diff")
    page.wait_for_selector(f"{STATS}[data-differing]")
    want = difference_stats(runs.pictures["one"][-1], runs.pictures["two"][-1])
    stats = page.locator(STATS)
    assert int(stats.get_attribute("data-differing")) == want["differing"]
    assert int(stats.get_attribute("data-total")) == want["total"]
    assert int(stats.get_attribute("data-max")) == want["max"]
    assert float(stats.get_attribute("data-mean")) == pytest.approx(want["mean"], abs=1e-3)
    expect(stats).to_contain_text(f"{want['differing']:,} of {want['total']:,} pixels differ")
    screenshot(page, "workbench-difference")

    # One step back: the figures follow the slider.
    key(page, "ArrowLeft")
    want = difference_stats(runs.pictures["one"][1], runs.pictures["two"][1])
    expect(stats).to_have_attribute("data-differing", str(want["differing"]))

    # Swipe (key s): the divider follows a drag and the arrow keys.
    key(page, "s")
    expect(page.locator(BENCH)).to_have_attribute("data-mode", "swipe")
    divider = page.locator(f"{PANE} .guildimg-wb-divider")
    stage = page.locator(f"{PANE} .guildimg-wb-stage").bounding_box()
    handle = divider.bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(stage["x"] + stage["width"] * 0.25, handle["y"] + 10, steps=5)
    page.mouse.up()
    expect(page.locator(PANE)).to_have_attribute("data-divider", "0.250", timeout=5_000)
    screenshot(page, "workbench-swipe")
    divider.focus()
    key(page, "ArrowRight")
    expect(page.locator(PANE)).to_have_attribute("data-divider", "0.270")
    key(page, "Shift+ArrowRight")
    expect(page.locator(PANE)).to_have_attribute("data-divider", "0.370")

    # Blink (key b): b again shows the other image; so does the toggle button.
    page.locator(BENCH).focus()
    key(page, "b")
    expect(page.locator(PANE)).to_have_attribute("data-showing", "A")
    key(page, "b")
    expect(page.locator(PANE)).to_have_attribute("data-showing", "B")
    screenshot(page, "workbench-blink")
    page.locator(f"{PANE} .guildimg-wb-blink").click()
    expect(page.locator(PANE)).to_have_attribute("data-showing", "A")
    assert_no_errors(chromium)


def canvas_centre_colour(page: Any, selector: str) -> list[int]:
    """The RGB at the middle of a canvas."""
    colour: list[int] = page.locator(selector).evaluate(
        """canvas => {
            const d = canvas.getContext('2d').getImageData(
                Math.floor(canvas.width / 2), Math.floor(canvas.height / 2), 1, 1).data;
            return [d[0], d[1], d[2]];
        }"""
    )
    return colour


def test_zoom_and_pan_stay_in_step_with_a_pixel_readout(
    bench: tuple[Lab, Runs], chromium: Browser
) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    one, two = runs.ids["one"], runs.ids["two"]
    open_lab(page, lab, "wb-zoom")
    compare(page, [one, two])
    canvases = page.locator(f"{CELLS} canvas")
    zoom = page.locator(f"{BENCH} .guildimg-wb-zoom")
    expect(zoom).to_have_text("fit")

    # The wheel over the first cell zooms both.
    box = canvases.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    expect(zoom).not_to_have_text("fit")
    scale = float(zoom.get_attribute("data-scale"))
    assert scale > 0

    # A drag over the second cell pans both: the same image pixel sits under the
    # same place of each cell, as their readouts tell.
    box2 = canvases.nth(1).bounding_box()
    page.mouse.move(box2["x"] + 100, box2["y"] + 100)
    page.mouse.down()
    page.mouse.move(box2["x"] + 60, box2["y"] + 80, steps=4)
    page.mouse.up()
    readouts = page.locator(f"{CELLS} .guildimg-wb-readout")
    # A point inside the picture, whatever the cells' shape.
    dx, dy = box2["width"] * 0.3, box2["height"] * 0.45
    page.mouse.move(box2["x"] + dx, box2["y"] + dy)
    expect(readouts.nth(1)).to_have_attribute("data-rgba", re.compile(r"\d"))
    x2, y2 = readouts.nth(1).get_attribute("data-x"), readouts.nth(1).get_attribute("data-y")
    page.mouse.move(box["x"] + dx, box["y"] + dy)
    expect(readouts.nth(0)).to_have_attribute("data-x", x2)
    expect(readouts.nth(0)).to_have_attribute("data-y", y2)
    # The readout is the file's pixel.
    expect(readouts.nth(0)).to_have_attribute("data-rgba", re.compile(r"\d"))
    rgba = [int(v) for v in readouts.nth(0).get_attribute("data-rgba").split(",")]
    expected = runs.pictures["one"][-1].convert("RGBA").getpixel((int(x2), int(y2)))
    assert tuple(rgba) == expected
    screenshot(page, "workbench-zoomed")

    # Keys: 1 is actual size, f fits again.
    page.locator(BENCH).focus()
    key(page, "1")
    expect(zoom).to_have_attribute("data-scale", "1")
    expect(zoom).to_have_text("100 %")
    key(page, "f")
    expect(zoom).to_have_text("fit")
    # Fitted, the middle of each cell is the middle of its image: red, then green.
    page.wait_for_timeout(200)
    assert canvas_centre_colour(page, f"{CELLS} >> nth=0 >> canvas") == list(RED)
    assert canvas_centre_colour(page, f"{CELLS} >> nth=1 >> canvas") == list(GREEN)
    assert_no_errors(chromium)


def test_link_layout_and_png_export(
    bench: tuple[Lab, Runs], chromium: Browser, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    one, two = runs.ids["one"], runs.ids["two"]
    open_lab(page, lab, "wb-share")
    compare(page, [one, two])
    page.locator(BENCH).focus()
    key(page, "ArrowLeft")
    expected = [revisions(lab, r)[::-1][1]["revision"] for r in (one, two)]
    expect_revisions(page, expected)

    # Save as PNG: both images, their run names and revisions under them.
    key(page, "f")
    with page.expect_download() as download:
        page.locator(f"{BENCH} .guildimg-wb-export").click()
    saved = tmp_path / "export.png"
    download.value.save_as(saved)
    exported = Image.open(saved).convert("RGB")
    tiles = json.loads(page.locator(BENCH).get_attribute("data-export-tiles"))
    assert len(tiles) == 2
    for tile, colour in zip(tiles, (RED, GREEN), strict=True):
        # The image fills its tile: its middle is the picture's middle.
        centre = (tile["x"] + tile["width"] // 2, tile["y"] + tile["height"] // 2)
        assert exported.getpixel(centre) == colour, (tile, centre)
        # Dark text right under the image: its run name and revision.
        band = exported.crop(
            (tile["x"], tile["y"] + tile["height"] + 2, tile["x"] + tile["width"],
             tile["y"] + tile["height"] + 40)
        )  # fmt: skip
        assert min(band.convert("L").tobytes()) < 100, tile
    assert tiles[0]["width"] / tiles[0]["height"] == pytest.approx(SIZE[0] / SIZE[1], rel=0.05)
    shutil.copy(saved, Path(__file__).parents[2] / "test-output" / "workbench-export.png")

    # Difference mode and a zoom, then the link: a new page opens the same view.
    key(page, "d")
    key(page, "+")
    zoom = page.locator(f"{BENCH} .guildimg-wb-zoom")
    expect(zoom).not_to_have_text("fit")
    zoomed = zoom.text_content()
    page.locator(f"{BENCH} .guildimg-wb-copy").click()
    link = page.locator(f"{BENCH} .guildimg-wb-copy").get_attribute("data-link")
    assert "guildimg-compare=" in link
    other = page.context.new_page()
    other.goto(link.replace("/lab/workspaces/wb-share", "/lab/workspaces/wb-link"))
    expect(other.locator(BENCH)).to_have_attribute("data-mode", "diff", timeout=60_000)
    expect(other.locator(f"{BENCH} .guildimg-wb-zoom")).to_have_text(zoomed)
    expect(other.locator(f"{BENCH} .guildimg-wb-position")).to_have_text("revision 2 of 3")
    expect(other.locator(STATS)).to_have_attribute(
        "data-differing",
        str(difference_stats(runs.pictures["one"][1], runs.pictures["two"][1])["differing"]),
    )
    screenshot(other, "workbench-link")
    other.close()

    # The layout: a reload restores the workbench as it was.
    page.wait_for_timeout(800)  # the state is saved once it rests
    page.reload()
    expect(page.locator(BENCH)).to_have_attribute("data-mode", "diff", timeout=60_000)
    expect(page.locator(f"{BENCH} .guildimg-wb-zoom")).to_have_text(zoomed)
    page.locator(BENCH).focus()
    key(page, "g")
    shown(page, 2)
    assert cell_revisions(page) == expected
    assert_no_errors(chromium)


def test_a_restored_tab_of_a_gone_run_says_so(bench: tuple[Lab, Runs], chromium: Browser) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    run_dir = write_run(
        runs.home, op="train", label="doomed", files={PATH: encoded(picture(9, 10))}
    )
    doomed = run_id_of(lab, "doomed")
    wait_for(lambda: revisions(lab, doomed) or None, 30, "doomed's image")
    open_lab(page, lab, "wb-gone")
    page.evaluate(
        "([runId, path]) => window.jupyterapp.commands.execute("
        "'guildimg:open-image', {runId, path})",
        [doomed, PATH],
    )
    expect(page.locator(".guildimg-viewer-meta")).to_contain_text("revision 1 of 1", timeout=30_000)
    page.wait_for_timeout(800)  # the layout is saved

    shutil.rmtree(run_dir)
    wait_for(lambda: doomed not in [r["id"] for r in lab.api("runs")["runs"]] or None, 60, "gone")
    page.reload()
    gone = page.locator(".guildimg-viewer-gone")
    expect(gone).to_be_visible(timeout=60_000)
    expect(gone).to_contain_text("is not watched here")
    expect(page.locator(".guildimg-viewer-slider")).to_be_hidden()
    expect(page.locator(".guildimg-viewer-image")).to_be_hidden()
    screenshot(page, "workbench-gone-run")
    gone.get_by_role("button", name="Close tab").click()
    expect(page.locator(".guildimg-viewer")).to_have_count(0)
    assert_no_errors(chromium)


def test_large_images_are_fetched_reduced_until_zoomed_in(
    bench: tuple[Lab, Runs], chromium: Browser
) -> None:
    from playwright.sync_api import expect

    lab, runs = bench
    page = chromium.page
    big = runs.ids["big"]
    fetched: list[str] = []
    page.on(
        "request",
        lambda request: (
            fetched.append(request.url) if f"/runs/{big}/images/" in request.url else None
        ),
    )
    open_lab(page, lab, "wb-large")
    compare(page, [big])
    # Fitted in a cell a few hundred pixels wide: a reduced copy, not 1600 px.
    assert fetched and all("thumb=" in url for url in fetched), fetched
    expect(page.locator(CELLS).first).to_contain_text("1600×1200")
    # At actual size the full image is fetched (and drawn from then on).
    page.locator(BENCH).focus()
    route = f"/runs/{big}/images/"
    with page.expect_request(lambda r: route in r.url and "thumb=" not in r.url):
        key(page, "1")
    assert_no_errors(chromium)
