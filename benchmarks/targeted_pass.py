"""Does a targeted pass cost the same on a small home and a large one? (issue 11)

A file-system event makes the monitor run a *targeted* pass over the run that
changed: map the changed path to its run, read that run, sync its image, list it,
and adjust the watch. That work should not grow with the home. This builds two
Guild homes (the layout of ``server_idle.py``: --images images a run, the 10
newest running) of --small and --runs runs, indexes each with a monitor in this
process, then, alternating between the two, writes a new image into a running run
and times what the monitor's thread does for it (``run_dirs_for``, the targeted
pass, the watch adjusted, with a real watcher). Prints the medians side by side and
their ratio: 1× means the pass does not depend on the home's size.

    python benchmarks/targeted_pass.py --runs 20000 --tmp /var/tmp
    python benchmarks/targeted_pass.py --runs 100000 --images 2 --tmp /var/tmp
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from server_idle import Home, build_home, png

from jupyter_guildimg.engine.fswatch import RunsWatcher
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources

__all__ = ["main"]


class _Indexed:
    """A home indexed by a monitor with a real watcher (its thread not started: the
    benchmark runs what the thread would, one step at a time)."""

    def __init__(self, root: str, runs: int, images: int) -> None:
        os.makedirs(root)
        started = time.perf_counter()
        self.home: Home = build_home(root, runs, images)
        built = time.perf_counter() - started
        self.watcher = RunsWatcher(lambda _paths: None)
        self.monitor = RunsMonitor(
            os.path.join(root, "logdir"),
            combine_sources([GuildHome(self.home.path)]),
            watcher=self.watcher,
            revision_steps=True,
            freeze_after_index=True,
        )
        started = time.perf_counter()
        self.monitor.run_pass()
        indexed = time.perf_counter() - started
        self.monitor._scheduler.watch.update()
        print(f"{runs:>7,} runs: built in {built:.1f} s, indexed in {indexed:.1f} s", flush=True)
        self.written = 0

    def one_change(self) -> float:
        """Seconds the monitor's thread spends on one new image in a running run."""
        run_dir = self.home.running[self.written % len(self.home.running)]
        path = os.path.join(run_dir, f"new-{self.written:04d}.png")
        with open(path, "wb") as f:
            f.write(png(10_000 + self.written))
        self.written += 1
        scheduler = self.monitor._scheduler
        started = time.perf_counter()
        run_dirs = scheduler.run_dirs_for({path})
        report = self.monitor.run_pass(only=run_dirs)
        scheduler.watch.update(full=False)
        elapsed = time.perf_counter() - started
        assert [p for _run, p in report.written] == [os.path.basename(path)], report.written
        return elapsed

    def close(self) -> None:
        self.monitor.close()
        self.watcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--tmp", default=None, help="where to build the homes")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="guildimg-targeted-", dir=args.tmp)
    try:
        homes = [
            _Indexed(os.path.join(root, str(n)), n, args.images) for n in (args.small, args.runs)
        ]
        times: list[list[float]] = [[], []]
        for _ in range(args.samples):
            for i, home in enumerate(homes):  # alternating: the machine's noise shared
                times[i].append(home.one_change())
        for home in homes:
            home.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    small, large = (statistics.median(t) * 1000 for t in times)
    print(f"\ntargeted pass for one new image, median of {args.samples}:")
    print(f"  {args.small:>7,} runs: {small:7.2f} ms")
    print(f"  {args.runs:>7,} runs: {large:7.2f} ms  ({large / small:.2f}× the small home)")


if __name__ == "__main__":
    main()
