"""How fast is a monitor pass, next to baselines measured on the same tree in the same run?

Builds a Guild home of N runs × M images (128-pixel PNG and JPEG, half in the run
root, half in ``samples/``) in a temporary directory, then measures, as medians of
--repeat rounds:

- cold: a fresh monitor's first pass into an empty log dir;
- warm: a pass with nothing changed;
- touched: a pass after touching --touch images;
- baselines: copying every image file (shutil.copyfile), ``cp -r`` of the whole
  Guild home (a subprocess), and os.walk + os.stat of the whole tree.

Files are aged an hour before measuring (runs that finished earlier), so the
monitor's racy-file re-checks do not count in the warm pass; touched images get
the current time, as `touch` gives them.

    python benchmarks/monitor.py                      # 200 and 2000 runs
    python benchmarks/monitor.py --runs 200 --repeat 5
    python benchmarks/monitor.py --guild-python /path/to/venv-with-guildai/bin/python

With --guild-python, Guild's own RunsMonitor (guild.tensorboard) is timed on the
same tree in a subprocess, cold and warm, once per scale.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from PIL import Image

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.project import write_run


def image_pool(count: int, size: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """Distinct images like a training run writes: smooth structure plus noise."""
    rng = random.Random(seed)
    pool = []
    for i in range(count):
        gradient = Image.linear_gradient("L").resize((size, size)).rotate(rng.randrange(360))
        noise = Image.effect_noise((size, size), 40 + rng.randrange(40))
        colour = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
        out = io.BytesIO()
        if i % 2:
            colour.save(out, "JPEG", quality=90)
            pool.append((".jpg", out.getvalue()))
        else:
            colour.save(out, "PNG")
            pool.append((".png", out.getvalue()))
    return pool


def build_home(root: str, runs: int, images: int, size: int) -> tuple[str, list[str]]:
    home = os.path.join(root, "guild-home")
    pool = image_pool(40, size)
    image_paths = []
    started = time.time() - 86400
    for r in range(runs):
        files = {}
        for i in range(images):
            ext, data = pool[(r + i) % len(pool)]
            folder = "" if i % 2 == 0 else "samples/"
            files[f"{folder}img-{i:03d}{ext}"] = data
        files["events.out.tfevents.1700000000.host"] = b""
        run_dir = write_run(
            home,
            op="train",
            flags={"lr": 0.01 * (r % 10), "epochs": 10, "arch": "resnet"},
            started=started + r,
            stopped=started + r + 60,
            files=files,
            sourcecode={"train.py": b"print('train')\n", "model.py": b"pass\n"},
        )
        image_paths.extend(
            os.path.join(run_dir, rel) for rel in files if rel[-4:] in (".png", ".jpg")
        )
    hour_ago = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (hour_ago, hour_ago), follow_symlinks=False)
    return home, image_paths


def tree_bytes(paths: list[str]) -> int:
    return sum(os.path.getsize(p) for p in paths)


def time_copy(image_paths: list[str], home: str, dest_root: str) -> float:
    dest = tempfile.mkdtemp(dir=dest_root)
    start = time.perf_counter()
    made = set()
    for path in image_paths:
        target = os.path.join(dest, os.path.relpath(path, home))
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        shutil.copyfile(path, target)
    elapsed = time.perf_counter() - start
    shutil.rmtree(dest)
    return elapsed


def time_cp(home: str, dest_root: str) -> float:
    dest = os.path.join(tempfile.mkdtemp(dir=dest_root), "copy")
    start = time.perf_counter()
    subprocess.run(["cp", "-r", home, dest], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(os.path.dirname(dest))
    return elapsed


def time_walk(home: str) -> float:
    start = time.perf_counter()
    for dirpath, _dirnames, filenames in os.walk(home):
        for name in filenames:
            os.stat(os.path.join(dirpath, name))
    return time.perf_counter() - start


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(args: argparse.Namespace, runs: int, root: str) -> dict[str, float]:
    home, image_paths = build_home(root, runs, args.images, args.size)
    result: dict[str, float] = {
        "runs": runs,
        "images": len(image_paths),
        "mb": tree_bytes(image_paths) / 1e6,
    }
    copies, cps, walks, colds, warms, toucheds = [], [], [], [], [], []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = random.Random(1)
    for round_ in range(args.repeat):
        copies.append(time_copy(image_paths, home, root))
        cps.append(time_cp(home, root))
        walks.append(time_walk(home))
        logdir = os.path.join(root, f"logdir-{round_}")
        monitor = RunsMonitor(logdir, GuildHome(home).list_runs)
        colds.append(timed(monitor.run_once))
        # Warm: nothing changed. The first warm pass after a cold one is measured
        # like every other: the monitor has no "just did this" shortcut.
        warms.extend(timed(monitor.run_once) for _ in range(3))
        for path in rng.sample(image_paths, args.touch):
            os.utime(path)
        toucheds.append(timed(monitor.run_once))
        shutil.rmtree(logdir)
    result["peak_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    result.update(
        copy=statistics.median(copies),
        cp=statistics.median(cps),
        walk=statistics.median(walks),
        cold=statistics.median(colds),
        warm=statistics.median(warms),
        touched=statistics.median(toucheds),
    )
    if args.guild_python:
        result.update(guild_times(args.guild_python, home, root))
    shutil.rmtree(home)
    return result


_GUILD_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from guild import var
    from guild.tensorboard import RunsMonitor
    logdir = sys.argv[1]
    monitor = RunsMonitor(logdir, lambda: var.runs(), log_hparams=False)
    t = time.perf_counter(); monitor.run_once(); cold = time.perf_counter() - t
    t = time.perf_counter(); monitor.run_once(); warm = time.perf_counter() - t
    print(json.dumps({"guild_cold": cold, "guild_warm": warm}))
    """
)


def guild_times(python: str, home: str, root: str) -> dict[str, float]:
    env = dict(os.environ, GUILD_HOME=home)
    logdir = tempfile.mkdtemp(dir=root)
    out = subprocess.run(
        [python, "-c", _GUILD_SCRIPT, logdir], env=env, capture_output=True, text=True, check=True
    )
    shutil.rmtree(logdir)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: list[dict[str, float]]) -> None:
    ms = lambda s: f"{s * 1000:9.1f} ms"  # noqa: E731
    rows = [
        ("runs × images", lambda r: f"{int(r['runs'])} × {int(r['images'] / r['runs'])}"),
        ("image MB", lambda r: f"{r['mb']:9.1f}"),
        ("copy images (baseline)", lambda r: ms(r["copy"])),
        ("cp -r of home (baseline)", lambda r: ms(r["cp"])),
        ("walk + stat (baseline)", lambda r: ms(r["walk"])),
        ("monitor cold pass", lambda r: ms(r["cold"])),
        ("monitor warm pass", lambda r: ms(r["warm"])),
        ("monitor touched pass", lambda r: ms(r["touched"])),
        ("cold / copy", lambda r: f"{r['cold'] / r['copy']:9.2f}×"),
        ("cold / cp -r", lambda r: f"{r['cold'] / r['cp']:9.2f}×"),
        ("warm / walk", lambda r: f"{r['warm'] / r['walk']:9.2f}×"),
        ("touched − warm", lambda r: ms(r["touched"] - r["warm"])),
        ("cold µs per image", lambda r: f"{r['cold'] / r['images'] * 1e6:9.1f}"),
        ("peak RSS growth MB", lambda r: f"{r['peak_rss_mb']:9.1f}"),
    ]
    if "guild_cold" in results[0]:
        rows += [
            ("Guild 0.9 cold pass", lambda r: ms(r["guild_cold"])),
            ("Guild 0.9 warm pass", lambda r: ms(r["guild_warm"])),
            ("Guild cold / ours", lambda r: f"{r['guild_cold'] / r['cold']:9.1f}×"),
            ("Guild warm / ours", lambda r: f"{r['guild_warm'] / r['warm']:9.1f}×"),
        ]
    print(f"{'':26}" + "".join(f"{'N=' + str(int(r['runs'])):>16}" for r in results))
    for label, cell in rows:
        print(f"{label:26}" + "".join(f"{cell(r):>16}" for r in results))
    if len(results) > 1:
        first, last = results[0], results[-1]
        per_image = (last["cold"] / last["images"]) / (first["cold"] / first["images"])
        print(
            f"\ncold cost per image at N={int(last['runs'])} vs N={int(first['runs'])}:"
            f" {per_image:.2f}×"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--images", type=int, default=20, help="images per run")
    parser.add_argument("--size", type=int, default=128, help="image width and height")
    parser.add_argument(
        "--touch", type=int, default=20, help="images touched before the touched pass"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--guild-python", help="a Python with guildai installed, to time Guild too")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="guildimg-bench-") as root:
        for runs in args.runs:
            print(f"building and measuring {runs} runs ...", file=sys.stderr)
            results.append(measure(args, runs, root))
    report(results)


if __name__ == "__main__":
    main()
