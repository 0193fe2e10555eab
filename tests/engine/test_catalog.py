"""The catalog over a real monitor: thumbnails bounded in memory (reduced decoding,
a decode cap, few widths, a bounded cache, memory given back), the formats and
modes they keep, and what the images listing says."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jupyter_guildimg.engine.catalog import AmbiguousRunError, Catalog, NotFoundError, run_matches
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, RunsDir, combine_sources
from jupyter_guildimg.engine.thumbnails import (
    THUMB_MAX,
    THUMB_MIN,
    THUMB_WIDTHS,
    ThumbnailError,
    thumb_width,
)
from jupyter_guildimg.guild.project import write_run

from helpers import age, jpeg, png, wait_for

MiB = 2**20
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")

Capture = Callable[..., tuple[Catalog, str]]


@pytest.fixture
def capture(home: GuildHome, logdir: str) -> Iterator[Capture]:
    """``capture(files, **catalog_options)``: a run with ``files``, captured by a real
    monitor; returns a Catalog over that monitor and the run's key."""
    monitors: list[RunsMonitor] = []

    def make(files: dict[str, bytes], **options: Any) -> tuple[Catalog, str]:
        run_dir = write_run(home.path, op="train", files=files)
        monitor = RunsMonitor(logdir, home.list_runs)
        monitors.append(monitor)
        report = monitor.run_pass()
        assert len(report.written) == len(files), report.to_json()
        return Catalog(monitor, **options), os.path.basename(run_dir)

    yield make
    for monitor in monitors:
        monitor.close()


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def blank_rgba_png(width: int, height: int) -> bytes:
    """A valid, fully transparent RGBA PNG, compressed row by row, so a huge one
    costs little memory to make (Pillow would hold every pixel first)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor, row = zlib.compressobj(9), bytes(1 + 4 * width)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# -- large images --------------------------------------------------------------


def test_a_png_too_large_to_decode_gets_a_clear_error_and_its_full_bytes_still_serve(capture):
    # 9000×9000 RGBA, about 300 KB on disk: decoding it would take 309 MiB.
    data = blank_rgba_png(9000, 9000)
    assert len(data) < 400_000
    catalog, key = capture({"huge.png": data})

    with pytest.raises(ThumbnailError) as caught:
        catalog.thumbnail(key, "huge.png", 128)
    message = str(caught.value)
    assert "'huge.png'" in message and "9000×9000" in message
    assert "309 MiB" in message and "128 MiB allowed" in message
    assert catalog.image(key, "huge.png").data == data  # the full image is still served


def test_a_large_grey_png_within_the_cap_gets_a_thumbnail_within_the_bound(capture):
    data = encode(Image.new("L", (9000, 9000), 200), "PNG", optimize=True)  # 77 MiB decoded
    catalog, key = capture({"grey.png": data})

    thumb = catalog.thumbnail(key, "grey.png", 100)
    assert thumb.content_type == "image/png"
    image = opened(thumb.data)
    assert (image.size, image.mode, image.getpixel((0, 0))) == ((128, 128), "L", 200)


def test_the_decode_cap_is_a_setting(capture):
    data = png((300, 200), "green")  # 234 KiB decoded (RGB takes 4 bytes a pixel)
    catalog, key = capture({"a.png": data}, thumbnail_max_decode=200 * 1024)
    with pytest.raises(ThumbnailError, match="300×200"):
        catalog.thumbnail(key, "a.png", 64)


# Runs in a child process, whose peak RSS is that of the thumbnails alone (tracemalloc
# would not see Pillow's C allocations). The peak is /proc's VmHWM: ru_maxrss would
# start from the parent's RSS, which Linux carries over fork and exec. Prints, in
# bytes: the peak before and after the thumbnails, the RSS before and after them,
# and what the thumbnails are.
_CHILD = """
import concurrent.futures, io, json, os, sys
from PIL import Image
from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.engine.monitor import RunsMonitor

home, logdir, path, widths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
widths = [int(w) for w in widths.split(",")]
monitor = RunsMonitor(logdir, GuildHome(home).list_runs)
monitor.run_pass()
catalog = Catalog(monitor)
key = os.path.basename(monitor.views[0].run.dir)

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

def rss():
    return status("VmRSS")

def peak():
    return status("VmHWM")

def thumb(width):
    image = Image.open(io.BytesIO(catalog.thumbnail(key, path, width).data))
    return [image.format, *image.size]

with concurrent.futures.ThreadPoolExecutor(len(widths)) as pool:
    pool.submit(int).result()  # the threads exist before measuring
    peak_before, rss_before = peak(), rss()
    thumbs = list(pool.map(thumb, widths))
    peak_after, rss_after = peak(), rss()
monitor.close()
print(json.dumps([peak_before, peak_after, rss_before, rss_after, thumbs]))
"""


def thumbnails_in_a_child(home: GuildHome, logdir: str, path: str, widths: list[int]) -> Any:
    args = [home.path, logdir, path, ",".join(map(str, widths))]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@linux_only
def test_a_large_jpeg_thumbnail_peaks_far_below_its_decoded_size(home, logdir):
    # 9000×9000 grey: 77 MiB decoded whole; libjpeg can decode it at 1/8 scale.
    decoded = 9000 * 9000
    write_run(
        home.path, op="train", files={"big.jpg": encode(Image.new("L", (9000, 9000)), "JPEG")}
    )

    peak_before, peak_after, _, _, thumbs = thumbnails_in_a_child(home, logdir, "big.jpg", [128])

    assert thumbs == [["JPEG", 128, 128]]
    assert peak_after - peak_before < decoded / 4


@linux_only
def test_concurrent_thumbnails_decode_two_at_a_time_and_give_their_memory_back(home, logdir):
    # Six widths at once of a PNG that cannot be decoded reduced (77 MiB whole).
    decoded = 9000 * 9000
    grey = encode(Image.new("L", (9000, 9000), 90), "PNG")
    write_run(home.path, op="train", files={"grey.png": grey})
    widths = [64, 128, 160, 192, 256, 512]

    peak_before, peak_after, rss_before, rss_after, thumbs = thumbnails_in_a_child(
        home, logdir, "grey.png", widths
    )

    assert thumbs == [["PNG", width, width] for width in widths]
    # Two decodes at a time (and their freed memory kept in two threads, not six).
    assert peak_after - peak_before < 3 * decoded
    # Given back once the thumbnails are made (glibc would keep some in its arenas).
    assert rss_after - rss_before < decoded / 4


# -- widths and the cache ------------------------------------------------------


def test_widths_round_up_to_the_standard_ones(capture):
    assert [thumb_width(w) for w in (16, 17, 100, 128, 129, 160, 161, 600, 1024)] == [
        16, 32, 128, 128, 160, 160, 192, 1024, 1024
    ]  # fmt: skip
    assert {160, 192, 512} <= set(THUMB_WIDTHS)  # what the panel and the sidebar ask for
    for width in (THUMB_MIN - 1, THUMB_MAX + 1):
        with pytest.raises(ThumbnailError, match=f"{THUMB_MIN} to {THUMB_MAX}"):
            thumb_width(width)

    catalog, key = capture({"a.png": png((400, 200))})
    first = catalog.thumbnail(key, "a.png", 161)
    assert catalog.thumbnail(key, "a.png", 192) is first  # one cache entry for both
    assert opened(first.data).size == (192, 96)
    assert opened(catalog.thumbnail(key, "a.png", 100).data).size == (128, 64)


def test_the_cache_is_bounded_by_bytes(capture):
    files = {name: png((64, 64), colour) for name, colour in (("a.png", "red"), ("b.png", "blue"))}
    catalog, key = capture(files, thumbnail_cache_bytes=1)  # room for none
    first = catalog.thumbnail(key, "a.png", 32)
    assert catalog.thumbnail(key, "a.png", 32) is not first  # made again: not kept

    catalog = Catalog(catalog.monitor, thumbnail_cache_bytes=len(first.data) + 10)
    a = catalog.thumbnail(key, "a.png", 32)
    assert catalog.thumbnail(key, "a.png", 32) is a
    catalog.thumbnail(key, "b.png", 32)  # evicts a.png's
    assert catalog.thumbnail(key, "a.png", 32) is not a


def test_close_ends_the_decoding_threads(capture):
    def decoding_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("guildimg-thumbnail")]

    before = set(decoding_threads())
    catalog, key = capture({"a.png": png((64, 64))})
    thumb = catalog.thumbnail(key, "a.png", 32)
    assert len(set(decoding_threads()) - before) == 1

    catalog.close()
    wait_for(lambda: not set(decoding_threads()) - before, 10, "the decoding thread to end")
    with pytest.raises(RuntimeError):
        catalog.thumbnail(key, "a.png", 64)
    assert catalog.thumbnail(key, "a.png", 32) is thumb  # cached
    assert catalog.images(key)["images"][0]["path"] == "a.png"


# -- formats and modes (as before) ----------------------------------------------


def test_a_jpeg_thumbnail_is_a_jpeg_of_the_right_size(capture):
    cmyk = encode(Image.new("CMYK", (300, 150), (0, 255, 255, 0)), "JPEG")
    catalog, key = capture({"photo.jpg": jpeg((400, 300), "blue"), "cmyk.jpg": cmyk})

    thumb = catalog.thumbnail(key, "photo.jpg", 160)
    assert thumb.content_type == "image/jpeg"
    image = opened(thumb.data)
    assert (image.format, image.size, image.mode) == ("JPEG", (160, 120), "RGB")

    # A CMYK JPEG (passed through by the monitor) gives an RGB JPEG thumbnail.
    image = opened(catalog.thumbnail(key, "cmyk.jpg", 64).data)
    assert (image.format, image.size, image.mode) == ("JPEG", (64, 32), "RGB")
    red, green, blue = image.getpixel((32, 16))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_png_modes_are_kept(capture, mode):
    catalog, key = capture({"a.png": png((100, 50), "white", mode=mode)})
    thumb = catalog.thumbnail(key, "a.png", 32)
    assert thumb.content_type == "image/png"
    image = opened(thumb.data)
    assert (image.format, image.size, image.mode) == ("PNG", (32, 16), mode)


def test_an_animated_gif_gives_its_first_frame(capture):
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("red", "lime", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    catalog, key = capture({"a.gif": gif})

    thumb = catalog.thumbnail(key, "a.gif", 16)
    assert thumb.content_type == "image/png"
    image = opened(thumb.data)
    assert image.size == (16, 16) and image.convert("RGB").getpixel((8, 8)) == (255, 0, 0)


# -- the images listing ------------------------------------------------------------


def test_the_images_listing_counts_dropped_revisions(home, logdir):
    run_dir = write_run(home.path, op="train", files={"a.png": png(), "b.png": png()})
    image = Path(run_dir, "a.png")
    monitor = RunsMonitor(logdir, home.list_runs, max_revisions_per_image=2)
    for i, colour in enumerate(["red", "green", "blue", "white"]):
        image.write_bytes(png(colour=colour))
        age(str(image), 300 - 60 * i)
        monitor.run_pass()
    monitor.close()

    listing = Catalog(monitor).images(os.path.basename(run_dir))
    entries = {entry["path"]: entry for entry in listing["images"]}
    assert (entries["a.png"]["dropped"], len(entries["a.png"]["revisions"])) == (2, 2)
    assert (entries["b.png"]["dropped"], len(entries["b.png"]["revisions"])) == (0, 1)


# -- finding and filtering runs ------------------------------------------------------


@pytest.fixture
def plain_runs(tmp_path: Path, logdir: str) -> Iterator[Catalog]:
    """A catalog over plain runs ``ab``, ``abc``, ``abd``, ``xy1``, ``xy2`` and
    ``exp/x`` (a RunsDir), plus another ``ab`` in a second folder (one run id twice)."""
    one = ["ab", "abc", "abd", "xy1", "xy2", "exp/x"]
    for folder, names in (("one", one), ("two", ["ab"])):
        for name in names:
            run = tmp_path / folder / name
            run.mkdir(parents=True)
            (run / "a.png").write_bytes(png())
    sources = [RunsDir(str(tmp_path / "one")), RunsDir(str(tmp_path / "two"))]
    monitor = RunsMonitor(logdir, combine_sources(sources))
    monitor.run_pass()
    yield Catalog(monitor)
    monitor.close()


def test_a_run_is_found_by_its_key_its_id_or_a_unique_prefix(plain_runs):
    catalog = plain_runs
    (exp,) = [run for run in catalog.runs() if run["run_id"] == "exp/x"]
    assert catalog.find(exp["id"]).run.id == "exp/x"  # the key
    assert catalog.find("exp/x").run.id == "exp/x"  # the id
    assert catalog.find("ex").run.id == "exp/x"  # a prefix of 2 characters
    assert catalog.find("abc").run.id == "abc"  # an id before a prefix
    assert catalog.run("abd") == next(r for r in catalog.runs() if r["run_id"] == "abd")
    with pytest.raises(NotFoundError, match=r"^no run 'e'$"):  # 1 character: no prefix
        catalog.find("e")
    with pytest.raises(NotFoundError, match=r"^no run 'zz'$"):
        catalog.find("zz")
    with pytest.raises(NotFoundError, match=r"^no run 'd'$"):  # not a prefix of a key
        catalog.find(exp["id"][:1])


def test_a_run_is_found_by_its_key_after_passes_that_change_move_add_and_remove_runs(home, logdir):
    old, new = (
        write_run(home.path, op="train", started=1_000 + i, files={"a.png": png()})
        for i in range(2)
    )
    monitor = RunsMonitor(logdir, combine_sources([home]))
    monitor.run_pass()
    catalog = Catalog(monitor)
    key = os.path.basename(old)
    assert catalog.find(key).run.dir == old
    Path(old, "b.png").write_bytes(png(colour="blue"))
    monitor.run_pass(only={old})  # in place: the same place, a new view
    assert set(catalog.find(key).images) == {"a.png", "b.png"}
    newest = write_run(home.path, op="train", started=5_000, files={"a.png": png()})
    monitor.run_pass()  # a run ahead of it: every place moves
    assert catalog.find(key).run.dir == old
    assert catalog.find(os.path.basename(newest)).run.dir == newest
    shutil.rmtree(new)
    monitor.run_pass()
    with pytest.raises(NotFoundError):
        catalog.find(os.path.basename(new))
    assert catalog.find(key).run.dir == old
    monitor.close()


def test_a_key_naming_several_runs_names_them(plain_runs):
    with pytest.raises(AmbiguousRunError, match=r"^several runs match 'ab': 'ab', 'ab'$") as caught:
        plain_runs.find("ab")  # the same id in two sources
    assert isinstance(caught.value, NotFoundError)  # the API's 404
    with pytest.raises(AmbiguousRunError, match="several runs match 'xy': ") as caught:
        plain_runs.find("xy")
    assert "'xy1'" in str(caught.value) and "'xy2'" in str(caught.value)
    # Each run's key names it alone.
    for run in plain_runs.runs(q="ab"):
        assert plain_runs.run(run["id"]) == run


def test_the_filter_keeps_runs_holding_every_word(plain_runs):
    catalog = plain_runs
    ids = lambda q: sorted(run["run_id"] for run in catalog.runs(q=q))  # noqa: E731
    assert ids("AB") == ["ab", "ab", "abc", "abd"]
    assert ids("exp running") == ["exp/x"]  # written a moment ago: running
    assert ids("exp completed") == []
    assert ids("") == ids("  ") == sorted(run["run_id"] for run in catalog.runs())
    assert [run["run_id"] for run in catalog.runs(image="a.png", q="abc")] == ["abc"]
    run = catalog.runs(q="exp")[0]
    for field in ("run_id", "short_id", "name", "operation", "label", "status"):
        text = str(dict(run)[field] or "")
        if text:
            assert run_matches(run, text.upper()), field
    assert not run_matches(run, "exp nothing")
    assert not run_matches(run, run["id"])  # a plain run's key is a digest nobody reads


def test_the_encoded_runs_list_is_the_json_of_the_runs_list(home, logdir):
    """``runs_body`` joins parts encoded once per run: byte for byte what ``json.dumps``
    makes of ``runs()``, for every filter, whichever runs TensorBoard shows, and
    after a pass changed one run (its part made again, the others kept)."""
    made = [
        write_run(home.path, op="train", label=label, files={name: png()})
        for label, name in (("first", "a.png"), ("zweite Größe ✓", "b.png"), ("third", "a.png"))
    ]
    shown: set[str] = set()
    monitor = RunsMonitor(logdir, home.list_runs)
    try:
        monitor.run_pass()
        catalog = Catalog(monitor, shown=lambda: frozenset(shown))

        def same(image: str | None = None, q: str | None = None) -> bytes:
            body = catalog.runs_body(image, q)
            assert body == json.dumps({"runs": catalog.runs(image, q)}).encode()
            return body

        everything = json.loads(same())["runs"]
        assert [run["label"] for run in everything] == ["third", "zweite Größe ✓", "first"]
        shown.add(everything[1]["id"])
        assert [run["in_tensorboard"] for run in json.loads(same())["runs"]] == [
            False,
            True,
            False,
        ]
        assert [run["label"] for run in json.loads(same(image="a.png"))["runs"]] == [
            "third",
            "first",
        ]
        assert [run["label"] for run in json.loads(same(q="größe"))["runs"]] == ["zweite Größe ✓"]
        assert json.loads(same(image="none.png", q="x")) == {"runs": []}

        Path(made[0], ".guild", "attrs", "label").write_text("renamed\n")
        monitor.run_pass()
        assert [run["label"] for run in json.loads(same())["runs"]] == [
            "third",
            "zweite Größe ✓",
            "renamed",
        ]
    finally:
        monitor.close()
