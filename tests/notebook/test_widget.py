"""The notebook panel's widget state, on a monitor in the test process (LocalBackend)
and on a real server (ServerBackend)."""

from __future__ import annotations

import asyncio
import functools
import io
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import jupyter_guildimg
from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.notebook.client import (
    LocalBackend,
    ServerBackend,
)
from jupyter_guildimg.notebook.header import indexing_text
from jupyter_guildimg.notebook.widget import PAGE_SIZE, GuildImgPanel

from helpers import png, wait_for

pytestmark = pytest.mark.usefixtures("no_servers")


@pytest.fixture
def local(guild_home, tmp_path):
    backend = LocalBackend([str(guild_home)], runtime_dir=str(tmp_path / "runtime"))
    yield backend
    backend.close()


@pytest.fixture
def make_panel(local):
    """A panel on ``local`` (auto-refresh off unless asked), closed after the test."""
    panels = []

    def make(**kwargs):
        kwargs.setdefault("auto_refresh", False)
        panel = GuildImgPanel(kwargs.pop("backend", local), **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()


def run_id(run_dir):
    return Path(run_dir).name


def pixel(data):
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def test_runs_are_listed_newest_first(make_panel, local, guild_home):
    then = time.time() - 3600
    old = write_run(guild_home, op="train", label="first", started=then, files={"a.png": png()})
    new = write_run(guild_home, op="eval", files={"a.png": png(), "b.png": png()})
    local.refresh()
    panel = make_panel()

    labels = [label for label, _value in panel.run_list.runs_select.options]
    assert [value for _label, value in panel.run_list.runs_select.options] == [
        run_id(new),
        run_id(old),
    ]
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(then))
    # [TB]: TensorBoard shows the run (the policy: every run, while there are few).
    assert labels[1] == f"{run_id(old)[:8]}  train  {started}  completed  [1 img]  [TB]  first"
    assert labels[0].startswith(f"{run_id(new)[:8]}  eval  ")
    assert labels[0].endswith("[2 img]  [TB]")
    # Two runs are a short list, not a box of empty rows; the newest is named in full.
    assert panel.run_list.runs_select.rows == 5
    assert f"<code>{run_id(new)[:8]}</code> · eval" in panel.run_list.details.value
    status = panel.header.status_html.value
    assert "<b>TensorBoard is not running</b>" in status
    assert "2 runs" in status and "3 images" in status
    # The header names the watched source and where the monitor runs.
    sources = panel.header.sources_html.value
    assert f'<code title="{guild_home}">' in sources and "(Guild home)" in sources
    assert "monitor: in this kernel (no server extension reachable)" in sources
    assert "guildimg-panel" in panel._dom_classes
    assert "guildimg-refresh" in panel.header.refresh_button._dom_classes
    assert panel.header.refresh_button.description == "Refresh"
    assert panel.tabs.titles == ("Images", "TensorBoard")
    assert "guildimg-tensorboard" in panel.tensorboard.frame._dom_classes


def test_the_newest_run_is_shown_as_thumbnails(make_panel, local, guild_home):
    write_run(guild_home, op="old", started=time.time() - 60, files={"x.png": png()})
    new = write_run(guild_home, op="new", files={"a.png": png((400, 200)), "s/b.png": png()})
    local.refresh()
    panel = make_panel()

    assert panel.run_list.runs_select.value == (run_id(new),)
    assert len(panel.images.thumbnail_images) == 2
    assert [box.children[1].description for box in panel.images.thumbnails.children] == [
        "a.png",
        "s/b.png",
    ]
    first = panel.images.thumbnail_images[0]
    assert "guildimg-thumb" in first._dom_classes
    assert Image.open(io.BytesIO(first.value)).size == (160, 80)


def test_the_text_filter(make_panel, local, guild_home):
    write_run(guild_home, op="train", label="lr=0.1", files={"a.png": png()})
    evaluation = write_run(guild_home, op="eval", files={"a.png": png()})
    local.refresh()
    panel = make_panel()
    panel.run_list.filter_text.value = "EVAL"
    assert [value for _label, value in panel.run_list.runs_select.options] == [run_id(evaluation)]
    panel.run_list.filter_text.value = "lr=0.1"
    assert len(panel.run_list.runs_select.options) == 1
    panel.run_list.filter_text.value = "nothing like it"
    assert panel.run_list.runs_select.options == ()
    assert panel.run_list.page_label.value == "0–0 of 0 runs"
    # The backend filters (GET runs?q=): every word must occur in some field.
    panel.run_list.filter_text.value = "train lr=0.1"
    assert len(panel.run_list.runs_select.options) == 1
    panel.run_list.filter_text.value = ""
    assert len(panel.run_list.runs_select.options) == 2


def test_runs_are_paged(make_panel, local, guild_home):
    start = time.time() - 10_000
    dirs = [write_run(guild_home, op="train", started=start + i) for i in range(450)]
    local.refresh()
    panel = make_panel()

    assert len(panel.run_list.runs_select.options) == PAGE_SIZE == 200
    assert panel.run_list.runs_select.options[0][1] == run_id(dirs[-1])
    assert panel.run_list.page_label.value == "1–200 of 450 runs"
    # A full page fills the panel's height (600 px: 24 rows of 20 px) and scrolls.
    assert panel.run_list.runs_select.rows == 24
    assert panel.run_list.prev_page.disabled and not panel.run_list.next_page.disabled
    panel.run_list.next_page.click()
    assert panel.run_list.page_label.value == "201–400 of 450 runs"
    panel.run_list.next_page.click()
    assert len(panel.run_list.runs_select.options) == 50 and panel.run_list.next_page.disabled
    panel.run_list.prev_page.click()
    assert panel.run_list.page_label.value == "201–400 of 450 runs"

    panel.select([run_id(dirs[0])])  # the oldest: on the last page
    assert panel.run_list.page_label.value == "401–450 of 450 runs"
    assert panel.run_list.runs_select.value == (run_id(dirs[0]),)
    panel.run_list.filter_text.value = "train"  # a new filter starts at the first page
    assert panel.run_list.page_label.value == "1–200 of 450 runs"


def test_a_clicked_thumbnail_opens_with_its_revisions(make_panel, local, guild_home):
    first, second = png((20, 10), "red"), png((30, 15), "blue")
    run_dir = write_run(guild_home, op="train", files={"samples/a.png": first})
    local.refresh()
    panel = make_panel()
    assert panel.images.viewer.layout.display == "none"

    panel.images.thumbnails.children[0].children[1].click()
    assert panel.images.viewer.layout.display != "none"
    assert panel.images.viewer_image.value == first
    assert "samples/a.png" in panel.images.viewer_info.value
    assert (
        "20×10 px" in panel.images.viewer_info.value
        and f"{len(first)} bytes" in panel.images.viewer_info.value
    )
    assert len(panel.images.revision_slider.options) == 1

    Path(run_dir, "samples", "a.png").write_bytes(second)
    local.refresh()
    panel.reload()
    (_newest, newest_rev), (_oldest, oldest_rev) = panel.images.revision_slider.options
    assert newest_rev > oldest_rev and panel.images.revision_slider.value == newest_rev
    assert (
        panel.images.viewer_image.value == second and "30×15 px" in panel.images.viewer_info.value
    )

    panel.images.revision_slider.value = oldest_rev
    assert panel.images.viewer_image.value == first
    assert "revision 1 of 2" in panel.images.viewer_info.value
    panel.reload()  # the user's choice of an older revision stays
    assert (
        panel.images.revision_slider.value == oldest_rev
        and panel.images.viewer_image.value == first
    )

    panel.images.close_viewer()
    assert panel.images.viewer.layout.display == "none"


def test_several_runs_compare_one_image_side_by_side(make_panel, local, guild_home):
    red = write_run(guild_home, op="a", started=time.time() - 30, files={"a.png": png()})
    blue = write_run(
        guild_home, op="b", started=time.time() - 20, files={"a.png": png(colour="blue")}
    )
    other = write_run(guild_home, op="c", files={"other.png": png()})
    local.refresh()
    panel = make_panel()
    panel.select([run_id(red), run_id(blue), run_id(other)])
    assert len(panel.images.thumbnail_images) == 3
    panel.open_image(run_id(blue), "a.png")

    assert panel.images.compare_box.layout.display != "none"
    assert len(panel.images.compare_box.children) == len(panel.images.compare_images) == 2
    assert [pixel(image.value) for image in panel.images.compare_images] == [
        (255, 0, 0),
        (0, 0, 255),
    ]

    panel.select([run_id(blue)])
    assert panel.images.compare_box.layout.display == "none" and panel.images.compare_images == []
    assert panel.images.viewer.layout.display != "none"  # still open on the run that has it


def test_thumbnails_come_48_at_a_time(make_panel, local, guild_home):
    files = {f"img{i:02}.png": png() for i in range(50)}
    write_run(guild_home, op="train", files=files)
    local.refresh()
    panel = make_panel()
    assert len(panel.images.thumbnail_images) == 48
    (more,) = panel.images.more_box.children
    assert more.description.startswith("2 more from ")
    more.click()
    assert len(panel.images.thumbnail_images) == 50 and panel.images.more_box.children == ()


def test_run_and_tab_arguments(make_panel, local, guild_home):
    old = write_run(guild_home, op="old", started=time.time() - 60, files={"a.png": png()})
    new = write_run(guild_home, op="new")
    while run_id(new)[:2] == run_id(old)[:2]:  # ids are random: 1 in 256 share 2 characters
        shutil.rmtree(new)
        new = write_run(guild_home, op="new")
    local.refresh()
    assert make_panel(run=run_id(old)[:6]).run_list.runs_select.value == (run_id(old),)
    # The backend's run lookup, the same as GET runs/<key>, is the panel's.
    assert make_panel(run=run_id(old)[:2]).run_list.runs_select.value == (run_id(old),)
    with pytest.raises(ValueError, match="no run 'nope'"):
        make_panel(run="nope")
    with pytest.raises(ValueError, match="tab must be"):
        make_panel(tab="scalars")


def test_the_in_tensorboard_buttons_change_the_backends_selection(make_panel, local, guild_home):
    start = time.time() - 100
    oldest, middle, newest = (
        run_id(write_run(guild_home, op=op, started=start + i, files={"a.png": png()}))
        for i, op in enumerate(("a", "b", "c"))
    )
    local.refresh()
    panel = make_panel()
    runs, tab = panel.run_list, panel.tensorboard
    assert local.selection()["mode"] == "auto"
    assert "TensorBoard shows <b>3 of 3 runs</b> (auto: every run" in tab.selection_html.value
    assert runs.tb_label.value.startswith("In TensorBoard: 3 of 3 runs (auto")
    assert runs.auto_tb.disabled and not runs.only_these.disabled  # the newest is selected

    panel.select([oldest, newest])
    runs.only_these.click()
    selection = local.selection()
    assert selection["mode"] == "runs" and set(selection["runs"]) == {oldest, newest}
    assert (selection["shown"], selection["total"]) == (2, 3)
    assert "TensorBoard shows <b>2 of 3 runs</b> (chosen runs)" in tab.selection_html.value
    marked = {value for label, value in runs.runs_select.options if label.endswith("[TB]")}
    assert marked == {oldest, newest}
    assert not runs.auto_tb.disabled

    panel.select([middle])
    runs.show_in_tb.click()
    assert set(local.selection()["runs"]) == {oldest, middle, newest}
    assert "<b>3 of 3 runs</b> (chosen runs)" in tab.selection_html.value

    panel.select([middle])
    runs.only_these.click()
    assert local.selection()["runs"] == [middle]
    runs.auto_tb.click()
    assert local.selection()["mode"] == "auto" and local.selection()["shown"] == 3
    assert "<b>3 of 3 runs</b> (auto: every run" in tab.selection_html.value
    assert runs.auto_tb.disabled

    panel.run_list.choose([])  # nothing selected: nothing to show or keep
    assert runs.show_in_tb.disabled and runs.only_these.disabled


def test_add_filtered_runs_adds_every_run_the_filter_keeps(make_panel, local, guild_home):
    start = time.time() - 100
    first, second, third, fourth = (
        run_id(write_run(guild_home, op=op, started=start + i, files={"a.png": png()}))
        for i, op in enumerate(("train", "eval", "train", "eval"))
    )
    local.refresh()
    panel = make_panel()
    runs = panel.run_list
    assert runs.add_filtered.disabled  # no filter: it would not mean "every run"
    assert runs.add_filtered.description == "Add filtered runs"

    panel.select([second])
    runs.only_these.click()
    assert local.selection()["runs"] == [second]
    runs.filter_text.value = "train"
    assert not runs.add_filtered.disabled
    runs.add_filtered.click()
    # The union with the runs shown, as the sidebar puts it: mode "runs", newest first.
    selection = local.selection()
    assert selection["mode"] == "runs" and selection["runs"] == [third, second, first]
    assert "<b>3 of 4 runs</b> (chosen runs)" in panel.tensorboard.selection_html.value
    assert runs.selected == [second]  # the selection is not what was added
    marked = {value for label, value in runs.runs_select.options if label.endswith("[TB]")}
    assert marked == {first, third}  # the filtered runs, now in TensorBoard

    runs.filter_text.value = "eval"
    runs.add_filtered.click()
    assert local.selection()["runs"] == [fourth, third, second, first]

    runs.auto_tb.click()
    runs.filter_text.value = "nothing like it"
    runs.add_filtered.click()  # keeps none: the runs the policy shows become chosen
    selection = local.selection()
    assert selection["mode"] == "runs" and selection["shown"] == 4
    runs.filter_text.value = ""
    assert runs.add_filtered.disabled


def test_the_tensorboard_tab_says_how_many_runs_and_warns(make_panel, local):
    panel = make_panel()
    tab = panel.tensorboard
    selection = local.selection()
    state = local.status()["tensorboard"]
    assert tab.warnings_html.layout.display == "none"
    # The count with thousands grouped, the rule that chose them, and the server's
    # warnings in its words, each marked, above TensorBoard's page.
    big = {
        **selection,
        "summary": "201 of 10,000 runs",
        "rule": "auto: the 200 newest and every running run",
    }
    warning = (
        "TensorBoard needs about 4,000 open files for the 201 runs shown but may open only 1,024"
    )
    tab.show_selection(big, {**state, "warnings": [warning, "a <b>second</b>"]})
    assert tab.selection_html.value.startswith(
        "TensorBoard shows <b>201 of 10,000 runs</b> (auto: the 200 newest and every running run)"
    )
    assert tab.warnings_html.layout.display is None
    assert tab.warnings_html.value == f"<p>⚠ {warning}</p><p>⚠ a &lt;b&gt;second&lt;/b&gt;</p>"
    assert tab.box.children == (tab.selection_html, tab.warnings_html, tab.frame)
    # The backend's own words for a filter, escaped.
    tab.show_selection(local.set_selection("filter", filter="lr=0.1"), state)
    assert "<b>0 of 0 runs</b> (filter &#x27;lr=0.1&#x27;)" in tab.selection_html.value
    assert tab.warnings_html.layout.display == "none"


def test_the_refresh_button_runs_a_pass(make_panel, local, guild_home):
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    local.refresh()
    panel = make_panel()
    local.monitor.stop()  # only the button may run a pass now
    Path(run_dir, "b.png").write_bytes(png())
    panel.header.refresh_button.click()
    assert len(panel.images.thumbnail_images) == 2


def test_auto_refresh_follows_new_images_and_can_be_turned_off(make_panel, local, guild_home):
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    local.refresh()
    panel = make_panel(auto_refresh=True)
    assert panel.header.auto_refresh.value and panel.refresh_thread.is_alive()

    # The monitor's pass is run here, not awaited from its file-system events (their
    # latency is test_monitor_events' subject): what is tested is that the panel
    # follows each pass by itself.
    Path(run_dir, "b.png").write_bytes(png())
    local.refresh()
    wait_for(lambda: len(panel.images.thumbnail_images) == 2, 10, "the new image in the panel")

    thread = panel.refresh_thread
    panel.header.auto_refresh.value = False
    wait_for(lambda: not thread.is_alive(), 10, "the auto-refresh thread to end")
    Path(run_dir, "c.png").write_bytes(png())
    local.refresh()
    assert local.status()["monitor"]["images"] == 3
    time.sleep(1.5)
    assert len(panel.images.thumbnail_images) == 2

    panel.header.auto_refresh.value = True
    wait_for(lambda: len(panel.images.thumbnail_images) == 3, 10, "the panel to catch up")


def test_the_header_says_how_far_the_index_is(make_panel, local, guild_home):
    write_run(guild_home, op="train", started=1_000, files={"a.png": png()})
    local.refresh()
    local.monitor.stop()  # only the pass below runs
    for i in range(300):  # many new runs: the next full pass indexes them in batches
        write_run(guild_home, op="eval", started=2_000 + i)
    held, release = threading.Event(), threading.Event()

    def hold_the_first_batch(report):
        if not held.is_set():
            held.set()
            release.wait(30)

    local.monitor.add_listener(hold_the_first_batch)
    thread = threading.Thread(target=local.monitor.run_pass)
    thread.start()
    try:
        assert held.wait(30), "no batch was published"
        panel = make_panel()
        index = local.status()["monitor"]["index"]
        assert not index["done"] and index["found"] == 301
        assert f"Indexing {index['indexed']:,} of 301 runs…" in panel.header.status_html.value
        assert panel.header.indexing
        assert 1 < len(panel.run_list.runs) < 301  # the newest, and the run known before
    finally:
        release.set()
        thread.join(30)
    panel.reload()
    assert not panel.header.indexing and "Indexing" not in panel.header.status_html.value
    assert "301 runs" in panel.header.status_html.value
    assert indexing_text({"indexed": 1200, "found": 10_000, "done": False}) == (
        "Indexing 1,200 of 10,000 runs…"
    )


def test_close_stops_the_auto_refresh_thread(make_panel):
    panel = make_panel(auto_refresh=True)
    thread = panel.refresh_thread
    assert thread.is_alive()
    panel.close()
    assert not thread.is_alive()


def test_an_unreachable_server_is_shown_not_raised(make_panel):
    backend = ServerBackend("http://127.0.0.1:9/", "token")
    panel = make_panel(backend=backend)
    assert "cannot reach http://127.0.0.1:9/" in panel.header.status_html.value
    assert panel.run_list.runs_select.options == ()
    backend.close()


def test_a_tensorboard_that_does_not_start_says_why(make_panel):
    backend = ServerBackend("http://127.0.0.1:9/", "token")
    panel = make_panel(backend=backend, tab="tensorboard")
    frame = panel.tensorboard.frame
    wait_for(lambda: "retry" in frame.value, 10, "the start to fail")
    # The summary (the reason's first sentence), then the whole reason.
    assert frame.value.startswith("<p>TensorBoard failed: cannot reach http://127.0.0.1:9/")
    assert "<pre>cannot reach http://127.0.0.1:9/" in frame.value
    backend.close()


def test_the_package_makes_panels_on_the_kernels_backend(guild_home):
    write_run(guild_home, op="train", files={"a.png": png()})
    panel = jupyter_guildimg.panel()
    try:
        assert isinstance(panel, GuildImgPanel) and isinstance(panel.backend, LocalBackend)
        panel.backend.refresh()
        panel.reload()
        assert len(panel.images.thumbnail_images) == 1
        another = jupyter_guildimg.panel()
        assert another.backend is panel.backend  # one per kernel
        another.close()
    finally:
        panel.close()


# -- on a real server ---------------------------------------------------------------


async def call(fn, *args, **kwargs):
    """Blocking panel and client calls run off the loop the test server runs on."""
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(fn, *args, **kwargs)
    )


@pytest.fixture
def server(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    backend = ServerBackend(url, jp_serverapp.identity_provider.token)
    yield backend
    backend.close()


async def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        await asyncio.sleep(0.1)


async def test_the_panel_follows_the_servers_change_feed(server, guild_home):
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    await call(server.refresh)
    panel = await call(GuildImgPanel, server)
    try:
        assert [value for _label, value in panel.run_list.runs_select.options] == [run_id(run_dir)]
        assert len(panel.images.thumbnail_images) == 1
        sources = panel.header.sources_html.value
        assert "monitor: server extension at http" in sources
        assert f'title="{guild_home}"' in sources and "(Guild home)" in sources
        # The server's selection: its policy shows the one run.
        assert "TensorBoard shows <b>1 of 1 run</b> (auto" in panel.tensorboard.selection_html.value
        await call(panel.run_list.only_these.click)
        assert (await call(server.selection))["mode"] == "runs"
        assert "<b>1 of 1 run</b> (chosen runs)" in panel.tensorboard.selection_html.value

        Path(run_dir, "b.png").write_bytes(png())
        await wait_until(lambda: len(panel.images.thumbnail_images) == 2, 10, "the new image")
        await call(panel.header.refresh_button.click)
    finally:
        await call(panel.close)
    assert not panel.refresh_thread.is_alive()


@pytest.mark.tensorboard
async def test_the_tensorboard_tab_shows_the_servers_proxy(server, guild_home, jp_base_url):
    write_run(guild_home, op="train", files={"a.png": png()})
    panel = await call(GuildImgPanel, server, tab="tensorboard", height=400, auto_refresh=False)
    try:
        assert panel.tabs.selected_index == 1
        await wait_until(lambda: "<iframe" in panel.tensorboard.frame.value, 120, "TensorBoard")
        assert f'src="{jp_base_url}guildimg/tensorboard/"' in panel.tensorboard.frame.value
        assert "height:400px" in panel.tensorboard.frame.value
        await wait_until(
            lambda: "<b>TensorBoard is ready</b>" in panel.header.status_html.value,
            10,
            "the header",
        )
    finally:
        await call(panel.close)
        await call(server.stop_tensorboard)


@pytest.mark.monitor_in_server
async def test_a_run_made_a_moment_ago_can_be_opened_by_id(
    jp_fetch, guildimg, server_monitor, guild_home
):
    await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
    server_monitor.stop()  # no timed pass: only the panel's own refresh can see it
    run_dir = write_run(guild_home, op="train", files={"new.png": png()})
    app = guildimg.serverapp
    url = f"http://127.0.0.1:{app.port}{app.base_url}"
    backend = ServerBackend(url, app.identity_provider.token)
    loop = asyncio.get_running_loop()
    made = await loop.run_in_executor(
        None, lambda: GuildImgPanel(backend, run=Path(run_dir).name[:8], auto_refresh=False)
    )
    try:
        assert made.run_list.runs_select.value == (Path(run_dir).name,)
    finally:
        made.close()
        backend.close()


@pytest.mark.monitor_in_server
async def test_a_servers_index_lists_the_newest_runs_as_it_goes(server, server_monitor, guild_home):
    await call(server.refresh)
    server_monitor.stop()  # no timed pass: only the held one below
    runs = [write_run(guild_home, op="train", started=1_000 + i) for i in range(600)]
    held, release = threading.Event(), threading.Event()

    def hold_the_first_batch(report):
        if not held.is_set():
            held.set()
            release.wait(30)

    server_monitor.add_listener(hold_the_first_batch)
    thread = threading.Thread(target=server_monitor.run_pass)
    thread.start()
    try:
        await wait_until(held.is_set, 30, "the first batch")
        listed = await call(server.runs)
        index = (await call(server.status))["monitor"]["index"]
        assert 0 < len(listed) < 600
        assert [run["run_id"] for run in listed] == [Path(d).name for d in runs[::-1]][
            : len(listed)
        ]
        assert index == {"indexed": len(listed), "found": 600, "done": False}
        panel = await call(GuildImgPanel, server, auto_refresh=False)
        assert f"Indexing {len(listed)} of 600 runs…" in panel.header.status_html.value
    finally:
        release.set()
        await call(thread.join, 30)
    try:
        await call(panel.reload)
        assert len(panel.run_list.runs) == 600 and not panel.header.indexing
        index = (await call(server.status))["monitor"]["index"]
        assert index == {"indexed": 600, "found": 600, "done": True}
    finally:
        await call(panel.close)


def test_a_reload_that_fails_is_made_again_without_waiting_for_a_change(
    make_panel, local, guild_home, monkeypatch, caplog
):
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    local.refresh()
    panel = make_panel(auto_refresh=True)
    show = panel.images.show
    failed = threading.Event()

    def fails_once(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in one reload")
        return show(*args, **kwargs)

    monkeypatch.setattr(panel.images, "show", fails_once)
    Path(run_dir, "b.png").write_bytes(png())
    local.refresh()  # the pass the panel follows (see the test above)
    wait_for(failed.is_set, 10, "the reload that fails")
    wait_for(lambda: len(panel.images.thumbnail_images) == 2, 20, "the reload made again")
    assert "reload failed; still following changes" in caplog.text
