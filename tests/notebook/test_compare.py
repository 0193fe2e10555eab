"""One image across runs (or two revisions of one run): the comparison widget, its one
slider, its difference readout, "Compare with…" in the panel, the Python API, and
``%guildimg compare`` in a real kernel against a real server.

Runs are real Guild-format runs; every revision is a real file rewrite captured by a
real monitor (a LocalBackend's, or the server's). Each revision's picture carries a
marker block whose colour says which run and revision it is, so a test reads what a
cell shows from the pixels it displays; the difference numbers expected are counted
here pixel by pixel from the files written."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

import jupyter_guildimg
from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.notebook.client import LocalBackend, shared_backend
from jupyter_guildimg.notebook.compare import ImageComparison
from jupyter_guildimg.notebook.parts import local_time
from jupyter_guildimg.notebook.revisions import nearest_in_time, number_of, parse_cell_key
from jupyter_guildimg.notebook.widget import GuildImgPanel

GREY = (128, 128, 128)
SIZE = (64, 48)
T0 = float(int(time.time()) - 10_000)  # whole seconds: revision times are exact
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def marker(run: int, number: int) -> tuple[int, int, int]:
    """The colour of the 8×8 block in the top-left corner of run ``run``'s revision
    ``number``."""
    return (40 + 60 * run, 20 * number, 100)


def picture(run: int, number: int, size: tuple[int, int] = SIZE) -> bytes:
    """A grey picture with the marker and ``number`` pixels of the run's colour in a row
    (so two runs' revisions differ in known pixels)."""
    image = Image.new("RGB", SIZE, GREY)
    image.paste(marker(run, number), (0, 0, 8, 8))
    for i in range(number):
        image.putpixel((20 + 3 * run + i, 30), (250 - 50 * run, 10 * i, 0))
    if size != SIZE:
        image = image.resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def counted(a: bytes, b: bytes) -> tuple[int, int, float]:
    """(pixels that differ, the largest difference, the mean difference over every
    pixel), a pixel's difference being its largest channel difference."""
    one, other = (Image.open(io.BytesIO(data)).convert("RGBA") for data in (a, b))
    assert one.size == other.size
    ds = [
        max(abs(p - q) for p, q in zip(one.getpixel(xy), other.getpixel(xy), strict=True))
        for xy in ((x, y) for x in range(one.width) for y in range(one.height))
    ]
    return sum(1 for d in ds if d), max(ds), sum(ds) / len(ds)


def put(run_dir: str, data: bytes, when: float, scratch: Path, name: str = "s.png") -> None:
    """Rewrite the run's image at once (a rename), modified at ``when``."""
    scratch.mkdir(exist_ok=True)
    temp = scratch / "next.png"
    temp.write_bytes(data)
    os.utime(temp, (when, when))
    os.replace(temp, Path(run_dir, name))


@dataclass
class Runs:
    """Three runs writing s.png: a at T0, +10, +20; b at +3, +14; c at +1, +11, +21.
    ``written[(run, number)]`` is the bytes of that revision."""

    ids: list[str]
    dirs: list[str]
    written: dict[tuple[int, int], bytes]


def make_runs(guild_home: Path, scratch: Path, refresh) -> Runs:
    times = {0: (0, 10, 20), 1: (3, 14), 2: (1, 11, 21)}
    dirs = [write_run(guild_home, op=op, started=T0 - 100 + i) for i, op in enumerate("abc")]
    written = {}
    for number in (1, 2, 3):
        for run, offsets in times.items():
            if number <= len(offsets):
                written[run, number] = picture(run, number)
                put(dirs[run], written[run, number], T0 + offsets[number - 1], scratch)
        refresh()
    return Runs([Path(d).name for d in dirs], dirs, written)


def shown(comparison: ImageComparison) -> list[tuple[int, int, int] | None]:
    """The marker colour each cell displays (what a user sees)."""
    return [
        Image.open(io.BytesIO(cell.image.value)).convert("RGB").getpixel((2, 2))
        if cell.image.value
        else None
        for cell in comparison.cells
    ]


@pytest.fixture
def local(no_servers, guild_home, tmp_path):
    backend = LocalBackend([str(guild_home)], runtime_dir=str(tmp_path / "runtime"))
    yield backend
    backend.close()


@pytest.fixture
def runs(local, guild_home, tmp_path):
    return make_runs(guild_home, tmp_path / "scratch", local.refresh)


@pytest.fixture
def comparisons():
    made = []

    def make(*args, **kwargs):
        made.append(ImageComparison(*args, **kwargs))
        return made[-1]

    yield make
    for comparison in made:
        comparison.close()


def test_one_slider_drives_every_cell_by_revision_number(local, runs, comparisons):
    a, b, c = runs.ids
    comparison = comparisons(local, [a[:8], b[:6], c], "s.png")  # the panel's run lookup
    assert [cell.run_id for cell in comparison.cells] == [a, b, c]
    # A grid that wraps, one cell per run.
    assert isinstance(comparison.grid, widgets.GridBox)
    assert "auto-fill" in comparison.grid.layout.grid_template_columns
    assert comparison.grid.children == tuple(cell.box for cell in comparison.cells)
    assert [value for _label, value in comparison.slider.options] == [1, 2, 3]

    # At first the newest: b has no revision 3 and shows its nearest, and says so.
    assert comparison.slider.value == 3
    assert shown(comparison) == [marker(0, 3), marker(1, 2), marker(2, 3)]
    label = comparison.cells[1].label.value
    assert local.run(b)["name"] in label
    assert "revision 2 of 2" in label and "nearest to 3" in label
    assert local_time(T0 + 14, "%Y-%m-%d %H:%M:%S") in label and "64×48 px" in label

    comparison.slider.value = 1
    assert shown(comparison) == [marker(0, 1), marker(1, 1), marker(2, 1)]
    assert all("revision 1 of " in cell.label.value for cell in comparison.cells)
    assert "nearest" not in comparison.cells[1].label.value
    comparison.show(2)
    assert shown(comparison) == [marker(0, 2), marker(1, 2), marker(2, 2)]


def test_by_time_each_cell_shows_its_revision_nearest_to_the_time(local, runs, comparisons):
    a, b, _c = runs.ids
    comparison = comparisons(local, [a, b], "s.png", align="time")
    assert comparison.slider.description == "Time"
    times = [T0, T0 + 3, T0 + 10, T0 + 14, T0 + 20]
    assert [value for _label, value in comparison.slider.options] == times
    assert comparison.slider.options[0][0] == local_time(T0, "%H:%M:%S")
    assert comparison.slider.value == T0 + 20
    assert shown(comparison) == [marker(0, 3), marker(1, 2)]
    expected = {
        T0: (1, 1),
        T0 + 3: (1, 1),  # a: 3 s from its first, 7 s from its second
        T0 + 10: (2, 2),  # b: 4 s from its second, 7 s from its first
        T0 + 14: (2, 2),
    }
    for when, (number_a, number_b) in expected.items():
        comparison.slider.value = when
        assert shown(comparison) == [marker(0, number_a), marker(1, number_b)], when
    comparison.slider.value = T0 + 10
    assert "+4.0 s from the time chosen" in comparison.cells[1].label.value
    assert "from the time chosen" not in comparison.cells[0].label.value
    # A tie goes to the older revision.
    (entry,) = [e for e in local.images(a)["images"] if e["path"] == "s.png"]
    assert nearest_in_time(entry, T0 + 5).number == 1

    # Switching the alignment keeps the place: a shows its revision 2 at T0 + 10.
    comparison.align.value = "revision"
    assert comparison.slider.value == 2 and comparison.slider.description == "Revision"
    comparison.slider.value = 1
    comparison.align.value = "time"
    assert comparison.slider.value == T0


def test_the_difference_readout_is_what_the_pixels_say(local, runs, comparisons):
    a, b, c = runs.ids
    comparison = comparisons(local, [a, b, c], "s.png")
    comparison.slider.value = 2
    difference = comparison.difference
    assert difference.chosen == (0, 1)
    differing, largest, mean = counted(runs.written[0, 2], runs.written[1, 2])
    assert differing == 4 + 64  # the runs' own pixels, and the marker block
    diff = difference.diff
    assert (diff.differing, diff.total, diff.max_difference) == (differing, 3072, largest)
    assert diff.mean_difference == pytest.approx(mean)
    assert f"{differing:,} of 3,072 pixels differ ({100 * differing / 3072:.2f} %)" in (
        difference.readout.value
    )
    assert f"max difference {largest} · mean {mean:.2f}" in difference.readout.value
    name_a, name_b = (local.run(run)["name"] for run in (a, b))
    assert f"<b>A</b> {name_a} · revision 2 — <b>B</b> {name_b} · revision 2" in (
        difference.readout.value
    )
    assert "sizes differ" not in difference.readout.value
    picture_shown = Image.open(io.BytesIO(difference.diff_image.value)).convert("RGB")
    assert picture_shown.size == SIZE
    black = sum(1 for xy in _every(SIZE) if picture_shown.getpixel(xy) == (0, 0, 0))
    assert black == 3072 - differing

    # The slider moves the difference with it; B can be another cell.
    comparison.slider.value = 1
    assert difference.diff.differing == counted(runs.written[0, 1], runs.written[1, 1])[0]
    difference.pick_b.value = 2
    assert difference.diff.differing == counted(runs.written[0, 1], runs.written[2, 1])[0]
    difference.amplify.value = 4.0
    assert difference.diff.gain == 4 and "amplified ×4" in difference.bar_labels.value
    difference.threshold.value = 254
    assert difference.diff.differing == 0


def _every(size):
    return ((x, y) for x in range(size[0]) for y in range(size[1]))


def test_images_of_different_sizes_are_compared_at_a_common_scale(
    local, runs, guild_home, tmp_path, comparisons
):
    a = runs.ids[0]
    big = write_run(guild_home, op="big")
    put(big, picture(1, 3, size=(128, 96)), T0 + 5, tmp_path / "scratch")
    local.refresh()
    comparison = comparisons(local, [a, Path(big).name], "s.png")
    assert "sizes differ (A 64×48, B 128×96): compared at 64×48" in (
        comparison.difference.readout.value
    )
    assert comparison.difference.diff.differing == counted(runs.written[0, 3], picture(1, 3))[0]


def test_two_revisions_of_one_run(local, runs, comparisons):
    a = runs.ids[0]
    assert parse_cell_key(f"{a}@1") == (a, 1) and parse_cell_key(a) == (a, None)
    comparison = comparisons(local, [f"{a[:8]}@1", a], "s.png")
    assert shown(comparison) == [marker(0, 1), marker(0, 3)]
    assert "pinned" in comparison.cells[0].label.value
    comparison.slider.value = 2  # moves the cell that follows it, not the pinned one
    assert shown(comparison) == [marker(0, 1), marker(0, 2)]
    diff = comparison.difference.diff
    assert diff.differing == counted(runs.written[0, 1], runs.written[0, 2])[0]

    # Pinned or not, from the cell's own choice.
    second = comparison.cells[1]
    assert [value for _label, value in second.pin_choice.options] == [0, 1, 2, 3]
    second.pin_choice.value = 3
    assert shown(comparison) == [marker(0, 1), marker(0, 3)]
    comparison.cells[0].pin_choice.value = 0  # follows the slider again
    assert shown(comparison)[0] == marker(0, comparison.slider.value)


def test_revision_numbers_count_the_dropped_ones(local, runs):
    (entry,) = [e for e in local.images(runs.ids[1])["images"] if e["path"] == "s.png"]
    newest, oldest = (r["revision"] for r in entry["revisions"])
    assert number_of(entry, oldest) == 1 and number_of(entry, newest) == 2
    assert number_of(entry, -1) is None
    # Two older revisions removed under max_revisions_per_image: the numbers go on.
    trimmed = {**entry, "dropped": 2}
    assert number_of(trimmed, oldest) == 3 and number_of(trimmed, newest) == 4
    assert nearest_in_time(trimmed, T0).number == 3


def test_new_revisions_join_on_reload(local, runs, tmp_path, comparisons):
    a, b, _c = runs.ids
    run_dir = runs.dirs[0]
    comparison = comparisons(local, [a, b], "s.png")
    put(run_dir, picture(0, 4), T0 + 30, tmp_path / "scratch")
    local.refresh()
    comparison.reload()  # at the newest, it follows the newest
    assert comparison.slider.value == 4 and shown(comparison) == [marker(0, 4), marker(1, 2)]
    comparison.slider.value = 1  # moved by the user: it stays
    put(run_dir, picture(0, 5), T0 + 40, tmp_path / "scratch")
    local.refresh()
    comparison.reload()
    assert [value for _label, value in comparison.slider.options] == [1, 2, 3, 4, 5]
    assert comparison.slider.value == 1 and shown(comparison) == [marker(0, 1), marker(1, 1)]


def test_mistakes_are_one_line_errors(local, runs, guild_home, comparisons):
    a, b, _c = runs.ids
    with pytest.raises(ValueError, match="no run 'nope'"):
        ImageComparison(local, ["nope"], "s.png")
    with pytest.raises(ValueError, match=r"none of these runs has an image 'x\.png'"):
        ImageComparison(local, [a, b], "x.png")
    with pytest.raises(ValueError, match="align must be 'revision' or 'time'"):
        ImageComparison(local, [a], "s.png", align="step")
    other = write_run(guild_home, op="other", files={"other.png": picture(0, 1)})
    local.refresh()
    with pytest.raises(ValueError, match="no image path in common"):
        ImageComparison(local, [a, Path(other).name])
    # Without a path: the first one the runs share. A run without it says so.
    assert comparisons(local, [a, b]).path == "s.png"
    comparison = comparisons(local, [a, Path(other).name], "s.png")
    assert "<i>no image s.png</i>" in comparison.cells[1].label.value
    assert comparison.cells[1].image.value == b""
    assert "Nothing to compare" in comparison.difference.readout.value


def test_compare_with_in_the_panels_image_viewer(local, runs):
    a, b, c = runs.ids
    panel = GuildImgPanel(local, run=a, auto_refresh=False)
    try:
        images = panel.images
        panel.open_image(a, "s.png")
        images.revision_slider.value = images.revision_slider.options[-1][1]  # the oldest
        assert images.picker.layout.display == "none"
        images.compare_with.click()
        assert images.picker.layout.display == ""
        values = [value for _label, value in images.compare_picker.options]
        assert values[0] == f"{a}@1" and set(values[1:]) == {b, c}
        assert images.compare_picker.options[0][0] == "this run at revision 1 (pinned)"

        images.compare_picker.value = (c,)
        images.compare_go.click()
        comparison = images.comparison
        assert isinstance(comparison, ImageComparison)
        assert images.comparison_box.children == (comparison,)
        assert images.picker.layout.display == "none"
        assert [cell.run_id for cell in comparison.cells] == [a, c]
        # It starts at the revision the viewer showed.
        assert comparison.slider.value == 1
        assert shown(comparison) == [marker(0, 1), marker(2, 1)]
        panel.reload()  # the panel's reload reads the comparison's runs again
        assert images.comparison is comparison and comparison.slider.value == 1

        # Two revisions of the run open: it, and it pinned where the viewer is.
        images.compare_with.click()
        images.compare_picker.value = (f"{a}@1",)
        images.compare_go.click()
        assert images.comparison is not comparison and comparison.cells[0].box is not None
        assert [cell.pin for cell in images.comparison.cells] == [None, 1]
        close = next(
            child
            for child in images.comparison.children[0].children
            if isinstance(child, widgets.Button) and child.description == "Close"
        )
        close.click()
        assert images.comparison is None and images.comparison_box.children == ()
    finally:
        panel.close()


def test_the_python_api_makes_it_on_the_kernels_backend(no_servers, guild_home, tmp_path):
    make_runs(guild_home, tmp_path / "scratch", shared_backend().refresh)
    assert jupyter_guildimg.compare is jupyter_guildimg.notebook.compare
    run = shared_backend().runs()[0]
    comparison = jupyter_guildimg.compare([run["id"], f"{run['id']}@1"], "s.png")
    try:
        assert isinstance(comparison, ImageComparison)
        assert comparison.backend is shared_backend()
        assert len(comparison.cells) == 2 and comparison.difference.diff is not None
    finally:
        comparison.close()


# -- %guildimg compare in a real kernel, against a real server ------------------------


COMPARISON_STATE = """
import io, json
from PIL import Image
from jupyter_guildimg.notebook.magic import last_comparison
c = last_comparison()
state = {"backend": type(c.backend).__name__, "options": [v for _l, v in c.slider.options]}
for when in state["options"]:
    c.slider.value = when
    state[str(when)] = [
        Image.open(io.BytesIO(cell.image.value)).convert("RGB").getpixel((2, 2))
        for cell in c.cells
    ]
c.slider.value = state["options"][2]
diff = c.difference.diff
state["diff"] = [diff.differing, diff.max_difference, diff.mean_difference]
state["labels"] = [cell.label.value for cell in c.cells]
print(json.dumps(state))
"""


@pytest.mark.notebook
async def test_the_magic_compares_in_a_real_kernel(jp_fetch, guildimg, guild_home, tmp_path):
    async def refresh():
        await jp_fetch("guildimg", "api", "refresh", method="POST", body="")

    times = {0: (0, 10, 20), 1: (3, 14)}
    dirs = [write_run(guild_home, op=op, started=T0 - 100 + i) for i, op in enumerate("ab")]
    for number in (1, 2, 3):
        for run, offsets in times.items():
            if number <= len(offsets):
                put(dirs[run], picture(run, number), T0 + offsets[number - 1], tmp_path / "s")
        await refresh()
    a, b = (Path(d).name for d in dirs)

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_guildimg"),
        nbformat.v4.new_code_cell(f"%guildimg compare {a[:8]} {b[:8]} --path s.png --align time"),
        nbformat.v4.new_code_cell(COMPARISON_STATE),
    ]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    async with client.async_setup_kernel():
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(cell, index)
    outputs = [output for cell in nb.cells for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert any(WIDGET_VIEW in output.get("data", {}) for output in nb.cells[1].outputs)
    (printed,) = [o["text"] for o in nb.cells[2].outputs if o.get("name") == "stdout"]
    state = json.loads(printed)

    assert state["backend"] == "ServerBackend"  # the server's monitor, not its own
    assert state["options"] == [T0, T0 + 3, T0 + 10, T0 + 14, T0 + 20]
    nearest = {T0: (1, 1), T0 + 3: (1, 1), T0 + 10: (2, 2), T0 + 14: (2, 2), T0 + 20: (3, 2)}
    for when, (number_a, number_b) in nearest.items():
        assert state[str(when)] == [list(marker(0, number_a)), list(marker(1, number_b))]
    differing, largest, mean = counted(picture(0, 2), picture(1, 2))
    assert state["diff"][:2] == [differing, largest]
    assert state["diff"][2] == pytest.approx(mean)
    assert "revision 2 of 3" in state["labels"][0] and "revision 2 of 2" in state["labels"][1]


# -- in JupyterLab, in headless Chromium --------------------------------------------


@pytest.mark.browser
def test_the_comparison_in_jupyterlab(lab, chromium, guild_home, tmp_path):
    from playwright.sync_api import expect

    from browser import all_loaded, screenshot
    from helpers import wait_for

    times = {0: (0, 10, 20), 1: (3, 14)}
    dirs = [write_run(guild_home, op=op, started=T0 - 100 + i) for i, op in enumerate("ab")]
    ids = [Path(d).name for d in dirs]

    def captured(run: int) -> int:
        images = lab.api(f"runs/{ids[run]}/images")["images"] if lab_knows(run) else []
        return sum(len(image["revisions"]) for image in images if image["path"] == "s.png")

    def lab_knows(run: int) -> bool:
        return any(r["id"] == ids[run] for r in lab.api("runs")["runs"])

    for number in (1, 2, 3):
        for run, offsets in times.items():
            if number <= len(offsets):
                put(dirs[run], picture(run, number), T0 + offsets[number - 1], tmp_path / "s")
                wait_for(lambda run=run, n=number: captured(run) == n, 30, f"revision {number}")

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_guildimg"),
        nbformat.v4.new_code_cell(f"%guildimg compare {ids[0][:8]} {ids[1][:8]} --path s.png"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, lab.root / "compare.ipynb")
    page = chromium.page
    page.goto(lab.page_url("/lab/tree/compare.ipynb"))
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    comparison = page.locator(".guildimg-compare").first
    expect(comparison).to_be_visible(timeout=120_000)
    cells = comparison.locator(".guildimg-compare-cell")
    expect(cells).to_have_count(2)
    all_loaded(page, ".guildimg-compare-cell img")
    expect(cells.nth(0)).to_contain_text("revision 3 of 3")
    expect(cells.nth(1)).to_contain_text("revision 2 of 2")
    difference = comparison.locator(".guildimg-difference")
    differing = counted(picture(0, 3), picture(1, 2))[0]
    expect(difference).to_contain_text(f"{differing} of 3,072 pixels differ")
    all_loaded(page, ".guildimg-difference img")
    screenshot(page, "browser-compare-1-newest", scroll_to=".guildimg-compare")

    # The one slider, from the keyboard: one step back moves every cell.
    comparison.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowLeft")
    expect(cells.nth(0)).to_contain_text("revision 2 of 3", timeout=10_000)
    expect(cells.nth(1)).to_contain_text("revision 2 of 2")
    differing = counted(picture(0, 2), picture(1, 2))[0]
    expect(difference).to_contain_text(f"{differing} of 3,072 pixels differ")

    # By time: the place is kept (a's revision 2) and b shows its nearest revision.
    comparison.get_by_role("button", name="By time").click()
    expect(cells.nth(1)).to_contain_text("+4.0 s from the time chosen", timeout=10_000)
    all_loaded(page, ".guildimg-compare-cell img")
    screenshot(page, "browser-compare-2-by-time", scroll_to=".guildimg-compare")
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert not chromium.errors, chromium.errors
