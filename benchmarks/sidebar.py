"""How long from an image (or a run) being written to the JupyterLab sidebar showing
it, next to the REST API listing it, measured in the same samples?

Starts ``jupyter lab`` with the extension over a Guild home of --runs runs (two
images each; the monitor's interval is the server default, 1 s), opens Lab in
headless Chromium (Debian's, driven by Playwright, as the browser tests do), opens
the Guild Images sidebar and selects the newest run. Then, --samples times each:

- image: writes a new image file into the selected run and notes the wall-clock
  time the API first lists it (``GET guildimg/api/runs/<id>/images``, polled every
  20 ms from a thread) and the time the sidebar's thumbnail for that path has
  loaded (``naturalWidth > 0``);
- run: writes a new run (``write_run``) and notes when ``GET guildimg/api/runs``
  first lists it and when the sidebar's run list has a row for it (in the DOM:
  the browser paints it at its next frame, which this does not wait for).

The page notes its times itself (``Date.now()`` from a MutationObserver and a
capturing ``load`` listener on the sidebar); Python's are ``time.time()``. Both are
the machine's wall clock; their offset is measured and printed. The API's times
are when a poll's answer arrived, so they lag the monitor's pass by up to one poll
(20 ms plus the request, whose median is printed); the API time stands for "the
monitor's pass" in the targets. The sidebar learns of a pass from the change feed
at once, so for a run its time can come out a little before the API's. Each write
waits a random 0-1 s first, so the writes land at random phases of the monitor's
cycle.

Prints median and worst of each, the sidebar's overhead over the API (the median
and worst of the per-sample differences) and the ratio of the medians, next to the
targets: the sidebar within 1 s of the API, the thumbnail within 3 s of the write.

    python benchmarks/sidebar.py
    python benchmarks/sidebar.py --runs 200 --samples 20
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from jupyter_guildimg.guild.project import write_run

# The browser tests' server, Chromium and sidebar helpers (one copy of each, and
# the sidebar's DOM selectors where the tests keep them).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "labextension"))
from test_sidebar import (
    RUNS,
    SIDEBAR,
    THUMB_ITEMS,
    THUMBS,
    open_lab,
    open_sidebar,
    select_run,
)

from browser import Lab, all_loaded, chromium, jupyter
from helpers import png, wait_for

POLL_SECONDS = 0.02
MONITOR_INTERVAL = 1.0  # the server's default GuildImgApp.interval
TIMEOUT = 30.0  # per sample and side; a miss is counted, not fatal
IMAGE_TARGET, OVERHEAD_TARGET = 3.0, 1.0
# At most 100 images per run are captured by default; the run has two already.
MAX_SAMPLES = 98

# Installed once in the page: notes Date.now() the first time each run row exists
# and each thumbnail has loaded. A MutationObserver sees a new row (and an image's
# new src) as it is inserted; the load event says when the picture is there.
RECORDER = """([sidebar, runs, items, thumbs]) => {
  const root = document.querySelector(sidebar);
  const seen = {};
  const scan = () => {
    const now = Date.now();
    for (const row of root.querySelectorAll(runs)) {
      seen['run:' + row.dataset.runId] ??= now;
    }
    for (const item of root.querySelectorAll(items)) {
      const image = item.querySelector(thumbs);
      if (image && image.naturalWidth > 0) {
        seen['image:' + item.dataset.path] ??= now;
      }
    }
  };
  new MutationObserver(scan).observe(root, {
    subtree: true, childList: true, attributes: true
  });
  root.addEventListener('load', scan, true);  // load does not bubble: capture it
  scan();
  window.guildimgBenchmark = seen;
}"""


@dataclass
class Series:
    """Seconds from each write to the API listing it and to the sidebar showing it
    (None: not within TIMEOUT)."""

    api: list[float | None] = field(default_factory=list)
    sidebar: list[float | None] = field(default_factory=list)
    # The API's times are when an answer arrived: this (the median time a poll's
    # request took) says how far they may lag the moment the server listed it.
    api_round_trip: float = 0.0


class ApiWatch:
    """Polls ``GET guildimg/api/<path>`` every 20 ms in a thread and notes the wall
    clock at which each key (an image path, a run id) is first in an answer."""

    def __init__(self, lab: Lab, path: str, keys: Callable[[Any], list[str]]) -> None:
        self._client = httpx.Client(
            base_url=f"{lab.url}/guildimg/api/",
            headers={"Authorization": f"token {lab.token}"},
            timeout=TIMEOUT,
        )
        self._path, self._keys = path, keys
        self._seen: dict[str, float] = {}
        self.round_trips: list[float] = []
        self._news = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ApiWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _poll(self) -> None:
        while not self._stop.is_set():
            sent = time.time()
            try:
                keys = self._keys(self._client.get(self._path).json())
            except httpx.TransportError:
                keys = []  # a busy server; the next poll tells
            now = time.time()
            self.round_trips.append(now - sent)
            with self._news:
                for key in keys:
                    self._seen.setdefault(key, now)
                self._news.notify_all()
            self._stop.wait(POLL_SECONDS)

    def first_seen(self, key: str) -> float | None:
        with self._news:
            self._news.wait_for(lambda: key in self._seen, TIMEOUT)
            return self._seen.get(key)


def page_first_seen(page: Any, key: str) -> float | None:
    """When the page's recorder first saw ``key``, in seconds since the epoch."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        handle = page.wait_for_function(
            "key => window.guildimgBenchmark[key]", arg=key, timeout=TIMEOUT * 1000
        )
    except PlaywrightTimeoutError:
        return None
    return handle.json_value() / 1000


def clock_offset(page: Any) -> tuple[float, float]:
    """The page's ``Date.now()`` minus Python's ``time.time()``, and the uncertainty
    (half the round trip), in seconds."""
    before = time.time()
    page_now = page.evaluate("Date.now()") / 1000
    after = time.time()
    return page_now - (before + after) / 2, (after - before) / 2


def measure(series: Series, write: Callable[[], str], kind: str, api: ApiWatch, page: Any) -> None:
    """One sample: ``write`` makes something new and returns its key."""
    # A random phase of the monitor's cycle, not the same one every sample.
    time.sleep(random.uniform(0, MONITOR_INTERVAL))
    key = write()
    written = time.time()
    shown = page_first_seen(page, f"{kind}:{key}")
    listed = api.first_seen(key)
    series.api.append(None if listed is None else listed - written)
    series.sidebar.append(None if shown is None else shown - written)


def write_image(run_dir: Path, index: int) -> str:
    name = f"bench-{index:03d}.png"
    # A new size each time: every sample is a new picture, not only a new path.
    (run_dir / name).write_bytes(png((40 + index, 32), "green"))
    return name


def write_new_run(home: Path, index: int) -> str:
    files = {"a.png": png((32, 32), "blue"), "samples/b.png": png((24, 24), "red")}
    return Path(write_run(home, op="bench", label=f"sample {index}", files=files)).name


def image_paths(body: Any) -> list[str]:
    return [image["path"] for image in body["images"]]


def run_ids(body: Any) -> list[str]:
    return [run["id"] for run in body["runs"]]


def open_newest_run(page: Any, lab: Lab, runs: int) -> str:
    """Lab with the sidebar open on all ``runs`` runs and the newest one selected,
    its thumbnails loaded; the newest run's id."""
    # The monitor's first pass over a large home takes a while.
    ids = wait_for(lambda: len(ids := run_ids(lab.api("runs"))) == runs and ids, 300, "runs")
    open_lab(page, lab)
    open_sidebar(page)
    page.wait_for_function(
        "([runs, n]) => document.querySelectorAll(runs).length === n",
        arg=[RUNS, runs],
        timeout=60_000,
    )
    select_run(page, ids[0])
    all_loaded(page, THUMBS)
    return ids[0]


def benchmark(tmp: Path, runs: int, samples: int) -> tuple[Series, Series, str]:
    """Both series, and a note on the clocks and the page's errors."""
    home = tmp / "guild-home"
    print(f"making {runs} runs ...", file=sys.stderr)
    for i in range(runs):
        write_new_run(home, i)
    with jupyter("lab", tmp, home) as lab, chromium(tmp / "chromium-profile") as browser:
        page = browser.page
        print("opening JupyterLab and the sidebar ...", file=sys.stderr)
        newest = open_newest_run(page, lab, runs)
        page.evaluate(RECORDER, [SIDEBAR, RUNS, THUMB_ITEMS, THUMBS])
        offset, uncertainty = clock_offset(page)
        images, new_runs = Series(), Series()
        print(f"{samples} images, then {samples} runs ...", file=sys.stderr)
        run_dir = home / "runs" / newest
        with ApiWatch(lab, f"runs/{newest}/images", image_paths) as api:
            for i in range(samples):
                measure(images, lambda i=i: write_image(run_dir, i), "image", api, page)
            images.api_round_trip = statistics.median(api.round_trips)
        with ApiWatch(lab, "runs", run_ids) as api:
            for i in range(samples):
                measure(new_runs, lambda i=i: write_new_run(home, runs + i), "run", api, page)
            new_runs.api_round_trip = statistics.median(api.round_trips)
        note = (
            f"page clock - Python clock: {offset * 1000:+.1f} ms (±{uncertainty * 1000:.1f}); "
            f"page errors: {len(browser.errors)}, console errors: {len(browser.console_errors)}"
        )
    return images, new_runs, note


def seen(times: list[float | None]) -> list[float]:
    return [t for t in times if t is not None]


def row(label: str, times: list[float], target: float | None = None) -> str:
    if not times:
        return f"{label:22}{'-':>10}{'-':>10}"
    line = f"{label:22}{statistics.median(times):9.3f}s{max(times):9.3f}s"
    return line + (f"{'≤ ' + format(target, 'g') + ' s':>10}" if target is not None else "")


def report(kind: str, series: Series, visible_target: float | None) -> list[str]:
    api, sidebar = seen(series.api), seen(series.sidebar)
    pairs = zip(series.api, series.sidebar, strict=True)
    overhead = [s - a for a, s in pairs if a is not None and s is not None]
    lines = [
        row(f"{kind}: API", api),
        row(f"{kind}: sidebar", sidebar, visible_target),
        row(f"{kind}: sidebar - API", overhead, OVERHEAD_TARGET),
    ]
    if api and sidebar:
        ratio = statistics.median(sidebar) / statistics.median(api)
        lines.append(f"{kind + ': sidebar / API':22}{ratio:9.2f}×  (of the medians)")
    lines.append(f"{kind + ': API poll took':22}{series.api_round_trip:9.3f}s  (median)")
    missed = len(series.api) - len(api), len(series.sidebar) - len(sidebar)
    if any(missed):
        lines.append(f"{kind}: not seen within {TIMEOUT:g} s: API {missed[0]}, sidebar {missed[1]}")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="runs in the Guild home")
    parser.add_argument(
        "--samples", type=int, default=20, help=f"images, and runs, to write (1-{MAX_SAMPLES})"
    )
    args = parser.parse_args()
    if not 1 <= args.samples <= MAX_SAMPLES:
        parser.error(f"--samples must be between 1 and {MAX_SAMPLES}")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    # jupyter() prints the end of the server's log on its way out: to stderr, so
    # that stdout is the table.
    with (
        tempfile.TemporaryDirectory(prefix="guildimg-sidebar-") as tmp,
        contextlib.redirect_stdout(sys.stderr),
    ):
        images, new_runs, note = benchmark(Path(tmp), args.runs, args.samples)
    print(
        f"jupyter lab, {args.runs} runs, monitor interval {MONITOR_INTERVAL:g} s, "
        f"{args.samples} samples each, API polled every {POLL_SECONDS * 1000:g} ms "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    print(note)
    print(f"{'':22}{'median':>10}{'worst':>10}{'target':>10}")
    for line in report("image", images, IMAGE_TARGET) + report("run", new_runs, None):
        print(line)


if __name__ == "__main__":
    main()
