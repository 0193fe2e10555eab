"""TensorBoard on a large Guild home: the whole log dir, or a view of the runs selected?

Builds a Guild home of --runs runs × --images images (small PNGs, distinct start
times, aged an hour: finished runs), mirrors it into a log dir with one cold pass of
the real monitor (``revision_steps=True``, the extension's events), then measures, in
the same run, with the extension's TensorBoard settings (``TensorBoardProcess``:
``--reload_interval 1``, the fast data server, its soft RLIMIT_NOFILE raised to the
hard limit):

- baseline: TensorBoard on the whole log dir: start → ready, start → the image tags
  of the ``limit`` (200) newest runs all listed by ``data/plugin/images/tags`` (given
  up after --timeout s, saying how many were listed), the RSS of TensorBoard and its
  data server then;
- view: a ``TensorBoardView`` with the default selection (auto, the 200 newest)
  attached to the monitor, TensorBoard on the view dir: the same figures;
- a selection change (``set_selection("runs", [10 other runs])``) → ``data/runs``
  showing exactly those runs, --repeat times;
- a changed image (new bytes written in a selected run) → its new step listed by the
  images plugin, --repeat times: once with a monitor pass run right after the write
  (in finished runs), once with the monitor's own thread following file-system events
  (a ``RunsWatcher``, as the server runs it) in the running runs (the --repeat newest
  runs are running: no exit status, a LOCK holding this benchmark's pid).

Targets (issue 12): view ready and its runs' tags listed ≤ 10 s; a selection change
visible ≤ 3 s; a changed image on the step slider ≤ 2 s after the write.

    python benchmarks/tensorboard_view.py                 # 10,000 runs × 5 images
    python benchmarks/tensorboard_view.py --runs 500
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from PIL import Image

# Run as a script, benchmarks/ is on sys.path: one copy of the RSS reader.
from tensorboard_scale import group_rss_mb

from jupyter_guildimg.engine.catalog import run_key
from jupyter_guildimg.engine.fswatch import RunsWatcher
from jupyter_guildimg.engine.layout import IMAGES_DIR
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources
from jupyter_guildimg.engine.selection import DEFAULT_LIMIT
from jupyter_guildimg.engine.tbprocess import TensorBoardProcess
from jupyter_guildimg.engine.view import TensorBoardView
from jupyter_guildimg.guild.project import write_run

# TensorBoard is on 127.0.0.1: no proxy from the environment may come in between.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_CHANGED_IMAGE = "img-000.png"


def png(colour: tuple[int, int, int], size: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


def build_home(root: str, runs: int, images: int, size: int, running: int) -> str:
    """A Guild home of ``runs`` runs, one second apart, each with ``images`` PNGs in
    its root, the ``running`` newest still running (this process holds their LOCK),
    the others finished; everything aged an hour (past the monitor's racy window)."""
    home = os.path.join(root, "guild-home")
    pool = [png((i * 37 % 256, i * 91 % 256, 128), size) for i in range(16)]
    day_ago = time.time() - 86400
    for r in range(runs):
        files = {f"img-{i:03d}.png": pool[(r + i) % len(pool)] for i in range(images)}
        live = r >= runs - running
        run_dir = write_run(
            home,
            op="train",
            flags={"lr": 0.001 * (r % 10), "seed": r},
            started=day_ago + r,
            stopped=day_ago + r + 30,
            exit_status=None if live else 0,
            files=files,
        )
        if live:
            with open(os.path.join(run_dir, ".guild", "LOCK"), "w") as f:
                f.write(f"{os.getpid()}\n")
    hour_ago = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (hour_ago, hour_ago), follow_symlinks=False)
    return home


def event_files(logdir: str) -> int:
    return sum(
        1 for _, _, names in os.walk(logdir, followlinks=True) for n in names if "tfevents" in n
    )


def get_json(url: str, timeout: float = 30.0) -> Any:
    """The JSON ``url`` answers; None if it does not answer (in time) or not with JSON."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def tags_listed(url: str, names: list[str], images: int) -> int:
    """How many of the runs ``names`` have all their ``images`` image tags listed."""
    tags = get_json(url + "data/plugin/images/tags")
    if not isinstance(tags, dict):
        return 0
    return sum(1 for name in names if len(tags.get(f"{name}/{IMAGES_DIR}", {})) >= images)


def runs_shown(url: str) -> set[str] | None:
    """The run log dirs TensorBoard lists (``<name>`` and ``<name>/.images`` are one)."""
    runs = get_json(url + "data/runs")
    if not isinstance(runs, list):
        return None
    return {run.split("/", 1)[0] for run in runs}


def newest_step(url: str, run: str, tag: str) -> int:
    """The highest step the images plugin lists for ``run``'s ``tag``; -1 if none."""
    query = urllib.parse.urlencode({"run": f"{run}/{IMAGES_DIR}", "tag": tag})
    entries = get_json(f"{url}data/plugin/images/images?{query}")
    if not isinstance(entries, list) or not entries:
        return -1
    return max(int(entry["step"]) for entry in entries)


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


async def wait_until(
    predicate: Callable[[], bool], timeout: float, step: float = 0.05
) -> float | None:
    """Seconds until ``predicate()`` (blocking HTTP: run off the loop) is true; None if
    it is not within ``timeout``."""
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if await loop.run_in_executor(None, predicate):
            return time.perf_counter() - began
        await asyncio.sleep(step)
    return None


async def start_and_list(
    tb: TensorBoardProcess, names: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Start ``tb``: seconds to ready and to every image tag of the runs ``names``
    listed (None past ``--timeout``, with how many were), RSS, files and warnings."""
    began = time.perf_counter()
    result = await tb.start()
    if result.outcome != "started" or tb.url is None or tb.pid is None:
        return {"failed": result.message}
    ready = time.perf_counter() - began
    url, want = tb.url, len(names)
    listed = await wait_until(lambda: tags_listed(url, names, args.images) == want, args.timeout)
    state = tb.state()
    return {
        "ready": ready,
        "tags": None if listed is None else ready + listed,
        "listed": tags_listed(url, names, args.images),
        "rss_mb": group_rss_mb(tb.pid),
        "files": state["files"],
        "warnings": state["warnings"],
    }


async def selection_changes(
    tb: TensorBoardProcess, view: TensorBoardView, monitor: RunsMonitor, args: argparse.Namespace
) -> list[float | None]:
    """``--repeat`` times: show 10 runs not shown before; seconds until TensorBoard's
    ``data/runs`` lists exactly those."""
    assert tb.url is not None
    url, times = tb.url, []
    candidates = [v for v in monitor.views if run_key(v.run) not in view.shown()]
    for i in range(args.repeat):
        chosen = candidates[i * 10 : i * 10 + 10]
        view.set_selection("runs", [run_key(v.run) for v in chosen])
        names = {v.name for v in chosen}
        times.append(await wait_until(lambda n=names: runs_shown(url) == n, args.timeout))
    return times


async def changed_images(
    tb: TensorBoardProcess,
    monitor: RunsMonitor,
    picks: list[tuple[str, str]],
    args: argparse.Namespace,
    *,
    manual: bool,
) -> list[float | None]:
    """For each ``(run name, run dir)``: new bytes for its image, then seconds from the
    write until TensorBoard lists a higher step for it (after ``monitor.run_pass()`` at
    once when ``manual``, else the monitor's own thread)."""
    assert tb.url is not None
    url, times = tb.url, []
    for name, run_dir in picks:
        # The run's images must be listed first: a run still loading is no success.
        await wait_until(lambda n=name: newest_step(url, n, _CHANGED_IMAGE) >= 0, args.timeout)
        before = newest_step(url, name, _CHANGED_IMAGE)
        colour = (random.randrange(256), random.randrange(256), random.randrange(256))
        data = png(colour, args.size)
        began = time.perf_counter()
        with open(os.path.join(run_dir, _CHANGED_IMAGE), "wb") as f:
            f.write(data)
        if manual:
            monitor.run_pass()
        left = args.timeout - (time.perf_counter() - began)
        seen = await wait_until(
            lambda n=name, b=before: newest_step(url, n, _CHANGED_IMAGE) > b, left
        )
        times.append(None if seen is None else time.perf_counter() - began)
    return times


async def measure(root: str, home: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    logdir = os.path.join(root, "logdir")
    # As the server runs it: file-system events, full passes rare.
    watcher = RunsWatcher(lambda paths: monitor.notify_changed(paths))
    monitor = RunsMonitor(
        logdir, combine_sources([GuildHome(home)]), revision_steps=True, watcher=watcher
    )
    view: TensorBoardView | None = None
    tbs: list[TensorBoardProcess] = []
    try:
        out["cold_pass"] = timed(monitor.run_pass)
        out["event_files"] = event_files(logdir)
        newest = [v.name for v in monitor.views[:DEFAULT_LIMIT]]
        out["newest"] = len(newest)

        print("baseline: TensorBoard on the whole log dir ...", file=sys.stderr)
        files = out["event_files"]
        whole = TensorBoardProcess(logdir, raise_file_limit=True, files_needed=lambda: files)
        tbs.append(whole)
        out["baseline"] = await start_and_list(whole, newest, args)
        await whole.stop()

        print("view: TensorBoard on the default selection ...", file=sys.stderr)
        view = TensorBoardView(os.path.join(root, "view"), logdir)
        began = time.perf_counter()
        view.attach(monitor)
        out["attach"] = time.perf_counter() - began
        tb = TensorBoardProcess(
            view.view_dir, raise_file_limit=True, files_needed=view.files_needed
        )
        tbs.append(tb)
        shown = [v.name for v in monitor.views if run_key(v.run) in view.shown()]
        out["view"] = await start_and_list(tb, shown, args)
        if "failed" in out["view"]:
            return out

        print("selection changes ...", file=sys.stderr)
        out["selection"] = await selection_changes(tb, view, monitor, args)
        view.set_selection("auto")  # back to the default's 200 runs for the images
        assert tb.url is not None
        url, auto = tb.url, {v.name for v in monitor.views if run_key(v.run) in view.shown()}
        out["back_to_auto"] = await wait_until(lambda: runs_shown(url) == auto, args.timeout, 0.05)

        print("changed images ...", file=sys.stderr)
        out["warm_pass"] = statistics.median(timed(monitor.run_pass) for _ in range(3))
        selected = [(v.name, v.run.dir) for v in monitor.views if run_key(v.run) in view.shown()]
        running = [(name, d) for name, d in selected if monitor.known_runs()[d].status == "running"]
        finished = [(name, d) for name, d in selected if (name, d) not in running]
        picks = finished[:: max(1, len(finished) // args.repeat)]
        out["image_manual"] = await changed_images(
            tb, monitor, picks[: args.repeat], args, manual=True
        )
        monitor.start()  # its thread: targeted passes on file-system events
        out["image_thread"] = await changed_images(
            tb, monitor, running[: args.repeat], args, manual=False
        )
        monitor.stop()
        out["thread_pass"] = (
            monitor.last_report.duration if monitor.last_report is not None else None
        )
        return out
    finally:
        for tb in tbs:
            await tb.stop()
            tb.stop_now()  # a no-op once stopped
        if view is not None:
            view.close()
        monitor.close()


def report(args: argparse.Namespace, out: dict[str, Any]) -> None:
    secs = lambda v: "—" if v is None else f"{v:.2f} s"  # noqa: E731
    print(
        f"\n{args.runs} runs × {args.images} images ({args.size}-px PNG): "
        f"{out['event_files']} event files; monitor's cold pass (revision_steps) "
        f"{secs(out['cold_pass'])}"
    )
    rows: dict[str, dict[str, Any]] = {"baseline: whole log dir": out["baseline"]}
    if "view" in out:
        rows["view: default selection"] = out["view"]

    def tags(r: dict[str, Any]) -> str:
        if r["tags"] is not None:
            return secs(r["tags"])
        return f"not within {args.timeout:g} s ({r['listed']} of {out['newest']})"

    lines: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("start → ready", lambda r: secs(r["ready"])),
        (f"start → {out['newest']} newest runs' tags", tags),
        ("RSS (TensorBoard + data server)", lambda r: f"{r['rss_mb']:.0f} MB"),
        ("event files needed / limit", lambda r: f"{r['files']['needed']} / {r['files']['limit']}"),
        ("warnings in state()", lambda r: f"{len(r['warnings'])}"),
    ]
    names = list(rows)
    print(f"\n{'':38}" + "".join(f"{n:>34}" for n in names))
    for label, cell in lines:
        cells = [("failed" if "failed" in rows[n] else cell(rows[n])) for n in names]
        print(f"{label:38}" + "".join(f"{c:>34}" for c in cells))
    if "attach" in out:
        print(f"{'(view made: attach → links)':38}{'':>34}{secs(out['attach']):>34}")
    for name in names:
        if "failed" in rows[name]:
            print(f"\n{name}: TensorBoard failed: {rows[name]['failed']}")
        for warning in rows[name].get("warnings", []):
            print(f"\n{name}: {warning[:300]}")
    if "selection" not in out:
        return

    def stats(times: list[float | None]) -> tuple[str, str, str]:
        done = [t for t in times if t is not None]
        missed = len(times) - len(done)
        worst = "—" if not done else secs(max(done))
        if missed:
            worst = f"{missed}× > {args.timeout:g} s"
        return (secs(statistics.median(done)) if done else "—", worst, f"{len(times)}")

    print(f"\n{'':52}{'median':>12}{'worst':>14}{'n':>4}{'target':>10}")
    timings = [
        ("selection change → data/runs exact (10 runs)", out["selection"], "3 s"),
        ("changed image → new step, pass right after write", out["image_manual"], "2 s"),
        ("changed image → new step, thread (events)", out["image_thread"], "2 s"),
    ]
    for label, times, target in timings:
        median, worst, n = stats(times)
        print(f"{label:52}{median:>12}{worst:>14}{n:>4}{target:>10}")
    print(
        f"\nback to auto ({out['newest']} runs) → data/runs exact: {secs(out['back_to_auto'])}; "
        f"monitor warm pass {secs(out['warm_pass'])} (median of 3), "
        f"last threaded pass {secs(out['thread_pass'])}"
    )
    print(
        "Note: 'pass right after write' runs monitor.run_pass() as soon as the file is"
        " written; the 'thread' row is the monitor as the server runs it: the write's"
        " file-system event starts a targeted pass of its run."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--images", type=int, default=5, help="images per run")
    parser.add_argument("--size", type=int, default=32, help="image side, pixels")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the timed changes")
    parser.add_argument("--timeout", type=float, default=120.0, help="s at most per wait")
    parser.add_argument("--tmp", help="directory for the temporary home and log dir")
    args = parser.parse_args()
    if args.runs < DEFAULT_LIMIT + 10 * args.repeat + 1:
        print(f"--runs must be above {DEFAULT_LIMIT + 10 * args.repeat}", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="guildimg-tbview-", dir=args.tmp)
    try:
        print(f"building {args.runs} runs × {args.images} images ...", file=sys.stderr)
        began = time.perf_counter()
        home = build_home(root, args.runs, args.images, args.size, args.repeat)
        print(f"built in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        out = asyncio.run(measure(root, home, args))
        report(args, out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
