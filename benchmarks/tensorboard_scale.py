"""Does TensorBoard serve every run's images under a soft ``ulimit -n 1024``?

Writes N runs × M images (small PNGs, aged an hour: finished runs) into a folder of runs,
mirrors them into a log dir with the real monitor (one event file per image), lowers this
process's soft RLIMIT_NOFILE to --soft (its children inherit it; the hard limit is left
alone), and starts TensorBoard on that log dir twice, with the extension's settings
(``--reload_interval 1``, the fast data server, ``TensorBoardProcess``):

- baseline: TensorBoard with the soft limit as it is (``raise_file_limit=False``);
- raised: as the extension starts it, its soft limit raised to the hard one.

For each it reports: the soft limit TensorBoard got; start→ready (``start()`` returning);
start→every run's image tags served, if that happened; how many runs have all M image
tags served once that count settled (unchanged for --settle s, or --timeout s after the
start; a count of 0 never settles), the most seen, and the fewest seen after it first
rose above 0 (the tags list flapping); the warnings ``state()`` shows; the RSS of
TensorBoard and its data server.

    python benchmarks/tensorboard_scale.py                        # 200 runs × 20 images
    python benchmarks/tensorboard_scale.py --runs 10000 --images 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from typing import Any

from PIL import Image

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import RunsDir
from jupyter_guildimg.engine.tbprocess import TensorBoardProcess

# TensorBoard is on 127.0.0.1: no proxy from the environment may come in between.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def image_pool(count: int, size: int) -> list[bytes]:
    pool = []
    for i in range(count):
        out = io.BytesIO()
        Image.new("RGB", (size, size), (i * 37 % 256, i * 91 % 256, 128)).save(out, "PNG")
        pool.append(out.getvalue())
    return pool


def build_logdir(root: str, runs: int, images: int, size: int) -> tuple[str, float]:
    """A log dir the monitor wrote for ``runs`` × ``images``; and the monitor's pass, s."""
    source = os.path.join(root, "runs")
    pool = image_pool(16, size)
    hour_ago = time.time() - 3600
    for r in range(runs):
        run = os.path.join(source, f"run-{r:05d}")
        os.makedirs(run)
        for i in range(images):
            path = os.path.join(run, f"img-{i:03d}.png")
            with open(path, "wb") as f:
                f.write(pool[(r + i) % len(pool)])
            os.utime(path, (hour_ago, hour_ago))
        os.utime(run, (hour_ago, hour_ago))
    logdir = os.path.join(root, "logdir")
    monitor = RunsMonitor(logdir, RunsDir(source).list_runs)
    began = time.perf_counter()
    try:
        monitor.run_once()
    finally:
        monitor.close()
    return logdir, time.perf_counter() - began


def event_files(logdir: str) -> int:
    return sum(
        1 for _, _, names in os.walk(logdir, followlinks=True) for n in names if "tfevents" in n
    )


def complete_runs(url: str, images: int) -> int:
    """Runs whose ``images`` image tags TensorBoard serves (0 if it does not answer)."""
    try:
        with _OPENER.open(url + "data/plugin/images/tags", timeout=30) as response:
            tags = json.loads(response.read())
    except (OSError, ValueError):
        return 0
    return sum(1 for run_tags in tags.values() if len(run_tags) >= images)


def group_rss_mb(pgid: int) -> float:
    """The resident memory of every process in group ``pgid`` (TensorBoard, data server)."""
    total_kb = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total_kb / 1024


async def measure(
    logdir: str, args: argparse.Namespace, raise_limit: bool, needed: int
) -> dict[str, Any]:
    tb = TensorBoardProcess(logdir, raise_file_limit=raise_limit, files_needed=lambda: needed)
    began = time.monotonic()
    result = await tb.start()
    ready = time.monotonic() - began
    if result.outcome != "started" or tb.url is None or tb.pid is None:
        await tb.stop()
        return {"failed": result.message, "ready": ready}
    url, pid = tb.url, tb.pid
    all_served: float | None = None
    last, since, lowest, most, rose = -1, time.monotonic(), args.runs, 0, False
    try:
        while True:
            count = await asyncio.to_thread(complete_runs, url, args.images)
            now = time.monotonic()
            if count == args.runs and all_served is None:
                all_served = now - began
            most = max(most, count)
            if count > 0:
                rose = True
            if rose:
                lowest = min(lowest, count)
            if count != last:
                last, since = count, now
            elif count > 0 and now - since >= args.settle:  # still 0: still loading
                break
            if now - began >= args.timeout:
                break
            await asyncio.sleep(args.poll)
        state = tb.state()
        return {
            "limit": state["files"]["limit"],
            "ready": ready,
            "all_served": all_served,
            "served": last,
            "most": most,
            "lowest": lowest if rose else 0,
            "warnings": state["warnings"],
            "rss_mb": group_rss_mb(pid),
            "settled": now - began,
        }
    finally:
        await tb.stop()


def report(args: argparse.Namespace, files: int, monitor_s: float, rows: dict[str, Any]) -> None:
    print(
        f"\n{args.runs} runs × {args.images} images: {files} event files "
        f"(monitor's first pass {monitor_s:.1f} s); soft limit {args.soft}, "
        f"hard {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}"
    )
    secs = lambda v: "—" if v is None else f"{v:.1f} s"  # noqa: E731
    lines = [
        ("TensorBoard's soft limit", lambda r: f"{r['limit']}"),
        ("start → ready", lambda r: secs(r["ready"])),
        ("start → every run served", lambda r: secs(r["all_served"])),
        ("runs served when settled", lambda r: f"{r['served']} of {args.runs}"),
        ("most served at once", lambda r: f"{r['most']}"),
        ("fewest served after the first", lambda r: f"{r['lowest']}"),
        ("settled after", lambda r: secs(r["settled"])),
        ("RSS (TensorBoard + data server)", lambda r: f"{r['rss_mb']:.0f} MB"),
        ("warnings in state()", lambda r: f"{len(r['warnings'])}"),
    ]
    names = list(rows)
    print(f"{'':34}" + "".join(f"{n:>22}" for n in names))
    for label, cell in lines:
        cells = [("failed" if "failed" in rows[n] else cell(rows[n])) for n in names]
        print(f"{label:34}" + "".join(f"{c:>22}" for c in cells))
    for name in names:
        if "failed" in rows[name]:
            print(f"\n{name}: TensorBoard failed: {rows[name]['failed']}")
            continue
        for warning in rows[name]["warnings"]:
            print(f"\n{name}: {warning[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="image side, pixels")
    parser.add_argument("--soft", type=int, default=1024, help="soft RLIMIT_NOFILE to set")
    parser.add_argument("--settle", type=float, default=5.0, help="s unchanged to settle")
    parser.add_argument("--timeout", type=float, default=120.0, help="s at most per start")
    parser.add_argument("--poll", type=float, default=0.5, help="s between tag polls")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and args.soft > hard:
        print(f"--soft {args.soft} is above the hard limit {hard}", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="guildimg-tbscale-")
    try:
        logdir, monitor_s = build_logdir(root, args.runs, args.images, args.size)
        files = event_files(logdir)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.soft, hard))
        try:
            rows = {}
            for name, raise_limit in (("baseline (no raise)", False), ("raised", True)):
                rows[name] = asyncio.run(measure(logdir, args, raise_limit, files))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        report(args, files, monitor_s, rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
