"""The ``guildimg`` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence

from .runs import combine_sources, open_source
from .tensorboard import MIN_INTERVAL, RunsMonitor, setup_logging

__all__ = ["main"]

log = logging.getLogger(__name__)


def _demo(args: argparse.Namespace) -> int:
    from .demo import make_demo_runs

    home = os.path.abspath(args.home)
    logdir = os.path.abspath(args.logdir or os.path.join(args.home, "..", "logdir"))
    print(f"Making {args.runs} demo runs in the Guild home {home} ...")
    runs = make_demo_runs(home, args.runs)
    monitor = RunsMonitor(logdir, open_source(home).list_runs)
    report = monitor.run_pass()
    print(f"\nThe monitor captured {len(report.written)} image(s) from {report.runs} run(s):")
    for name, path in report.written:
        print(f"  {name}  {path}")
    for problem in report.problems:
        print(f"  problem: {problem.run} {problem.path} {problem.message}")
    print(f"\nLog dir: {logdir}\nSee it with:  tensorboard --logdir '{logdir}'")
    return 0 if runs and report.written else 1


def _monitor(args: argparse.Namespace) -> int:
    try:
        sources = [open_source(path) for path in args.sources]
    except FileNotFoundError as e:
        print(f"guildimg: {e}", file=sys.stderr)
        return 2
    logdir = args.logdir or tempfile.mkdtemp(prefix="guildimg-logdir-")
    monitor = RunsMonitor(logdir, combine_sources(sources), interval=args.interval)
    if args.once:
        report = monitor.run_pass()
        print(f"{report.runs} runs, {report.images} images, {len(report.written)} written")
        return 0
    print(f"Monitoring {', '.join(s.path for s in sources)} into {logdir} (Ctrl+C stops)")
    stop = threading.Event()
    # Handlers rather than KeyboardInterrupt: SIGINT arrives ignored in processes
    # started in the background by a shell script, and SIGTERM should stop too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    monitor.start()
    try:
        stop.wait()
        print("\nStopping ...")
    finally:
        monitor.stop()
    return 0


def _interval(text: str) -> float:
    value = float(text)
    if value < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guildimg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="make demo runs and capture their images once")
    demo.add_argument("--home", default="guildimg-demo/guild-home", help="Guild home for the runs")
    demo.add_argument("--logdir", help="log dir (default: next to the home)")
    demo.add_argument("--runs", type=int, default=3, help="how many runs to make")
    demo.set_defaults(func=_demo)
    monitor = sub.add_parser("monitor", help="mirror runs into a log dir with image summaries")
    monitor.add_argument("sources", nargs="+", help="Guild homes or folders of runs")
    monitor.add_argument("--logdir", help="log dir (default: a new temporary directory)")
    monitor.add_argument("--interval", type=_interval, default=1.0, help="seconds between passes")
    monitor.add_argument("--once", action="store_true", help="one pass, then exit")
    monitor.set_defaults(func=_monitor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
