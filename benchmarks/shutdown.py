"""How long does the server's shutdown spend on its temporary log dir?

Builds a log dir laid out as the monitor writes it, for --runs runs of --images
images each: per run a directory with a symlink for every run file (the images and
two other files) and ``.images/`` holding one small summary file per image, plus the
hparams and time files. Then, on two such log dirs, times:

- old: ``shutil.rmtree`` of the log dir, as the server did at shutdown;
- new: what the server does now: stop the monitor (which holds the log dir's lock),
  rename the dir away and start its removal in the background
  (``processes.remove_tree_soon``). Also reported: how long that background
  removal took to finish, which no longer holds up the shutdown.

The target is a shutdown of at most 5 s at 10,000 runs (Docker's stop timeout is
10 s). Everything is made under --tmp (default: the temporary directory) and
removed at the end.

    python benchmarks/shutdown.py
    python benchmarks/shutdown.py --runs 10000 --images 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time

from jupyter_guildimg.engine import processes
from jupyter_guildimg.engine.monitor import RunsMonitor

_SUMMARY = b"\0" * 180  # about the size of a small image summary's framing and header
_RUN_FILES = ("events.out.tfevents.0000000000.hparams", "events.out.tfevents.9999999999.time")


def make_runs(root: str, runs: int, images: int) -> list[str]:
    """``runs`` run directories of ``images`` small images and two other files each."""
    dirs = []
    for i in range(runs):
        run = os.path.join(root, f"run{i:05d}")
        os.makedirs(os.path.join(run, "samples"))
        for j in range(images):
            with open(os.path.join(run, "samples", f"img{j}.png"), "wb") as f:
                f.write(b"\x89PNG" + bytes(60))
        for name in ("metrics.csv", "log.txt"):
            with open(os.path.join(run, name), "w") as f:
                f.write("x\n")
        dirs.append(run)
    return dirs


def make_logdir(logdir: str, run_dirs: list[str], images: int) -> int:
    """The monitor's layout for ``run_dirs``; returns how many entries it made."""
    entries = 0
    for i, run in enumerate(run_dirs):
        out = os.path.join(logdir, f"{i:08x} train 2026-12-01 10:00:00")
        os.makedirs(os.path.join(out, "samples"))
        os.makedirs(os.path.join(out, ".images"))
        entries += 3
        for name in ("metrics.csv", "log.txt"):
            os.symlink(os.path.join(run, name), os.path.join(out, name))
            entries += 1
        for j in range(images):
            rel = f"samples/img{j}.png"
            os.symlink(os.path.join(run, rel), os.path.join(out, rel))
            digest = hashlib.md5(rel.encode()).hexdigest()
            name = f"events.out.tfevents.{j:010d}.image.{digest}"
            with open(os.path.join(out, ".images", name), "wb") as f:
                f.write(_SUMMARY)
            entries += 2
        for name in (
            "events.out.tfevents.0000000000.hparams",
            "events.out.tfevents.9999999999.time",
        ):
            with open(os.path.join(out, name), "wb") as f:
                f.write(_SUMMARY)
            entries += 1
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="guildimg-bench-shutdown-", dir=args.tmp)
    try:
        began = time.perf_counter()
        run_dirs = make_runs(os.path.join(work, "runs"), args.runs, args.images)
        old_dir = os.path.join(work, "old-logdir")
        new_dir = tempfile.mkdtemp(prefix=processes.SERVER_LOGDIR_PREFIX, dir=work)
        entries = make_logdir(old_dir, run_dirs, args.images)
        make_logdir(new_dir, run_dirs, args.images)
        print(
            f"{args.runs} runs x {args.images} images: {entries} log dir entries each, "
            f"built in {time.perf_counter() - began:.1f} s"
        )

        start = time.perf_counter()
        shutil.rmtree(old_dir)
        old = time.perf_counter() - start

        monitor = RunsMonitor(new_dir, list, interval=1.0)
        monitor.acquire_logdir()  # as the server's monitor holds it
        start = time.perf_counter()
        monitor.stop()
        removing = processes.remove_tree_soon(new_dir)
        new = time.perf_counter() - start
        assert removing is not None and not os.path.exists(new_dir)
        while os.path.exists(removing):
            time.sleep(0.05)
        background = time.perf_counter() - start

        print(f"old: shutil.rmtree of the log dir            {old:8.2f} s")
        print(f"new: monitor stop + rename + background start {new:8.3f} s  (target <= 5 s)")
        print(f"     the background removal itself finished  {background:8.2f} s after")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
