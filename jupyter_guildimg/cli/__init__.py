"""guildimg: see every image your ML runs write, in TensorBoard and in Jupyter.

It watches Guild homes and folders of runs (PyTorch's runs/, Lightning's
lightning_logs/, Hydra's outputs/), copies links to their files into a log
directory of its own, and adds an image summary for every image a run writes,
a new one each time the image changes. Run directories are never written to."""

# The docstring above is ``guildimg --help``'s description, so it speaks to users.
# For the code: this module is the command line (its commands, their options and
# the option types) and ``main``, the console entry point; each command lives in
# its own module: demo.py (guildimg demo), watch.py (guildimg monitor and guildimg
# tensorboard), filters.py (the runs guildimg tensorboard shows).

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from .._version import __version__
from ..engine.monitor import DEFAULT_INTERVAL, MIN_INTERVAL, setup_logging
from ..engine.runs import CONVENTIONAL_RUN_FOLDERS
from ..engine.selection import DEFAULT_LIMIT
from ..guild.demo import LIVE_EPOCH_SECONDS, LIVE_EPOCHS
from .demo import demo_command
from .filters import STATUSES, since
from .filters import RunFilter as RunFilter  # where tests and callers import it from
from .watch import monitor_command, tensorboard_command

__all__ = ["main"]

log = logging.getLogger(__name__)


# argparse names a type function in its "invalid <name> value" message, so these
# keep the names that message has always shown.
def _max_runs(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (every run) or more")
    return value


def _interval(text: str) -> float:
    value = float(text)
    if value < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL}")
    return value


_DEFAULTS = (
    "the Guild home ($GUILD_HOME or ~/.guild) and the folders "
    + ", ".join(f"{name}/" for name in CONVENTIONAL_RUN_FOLDERS)
    + " of the current directory, those that exist (if none does: ./runs, watched"
    " until it appears)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guildimg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'guildimg COMMAND --help' for what each command does and takes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="make demo runs and open JupyterLab on them",
        description="Make a few demo training runs in a Guild home of their own, then"
        " start JupyterLab on them with the Guild Images sidebar and TensorBoard, and"
        " print the URL to open. One run keeps training for a while after start-up, so"
        " its sample grid changes while you watch. Ctrl+C stops everything. With"
        " --once: capture the runs' images once into a log dir, print them, and exit.",
    )
    demo.add_argument("--home", default="guildimg-demo/guild-home", help="Guild home for the runs")
    demo.add_argument("--runs", type=int, default=3, help="how many runs to make")
    demo.add_argument("--fresh", action="store_true", help="make new runs even if some exist")
    demo.add_argument("--port", type=int, default=8888, help="the Jupyter server's port")
    demo.add_argument("--once", action="store_true", help="capture once and print, no server")
    demo.add_argument("--logdir", help="with --once: log dir (default: next to the home)")
    demo.add_argument(
        "--live-epochs", type=int, default=LIVE_EPOCHS, metavar="N",
        help=f"epochs of the live run (default {LIVE_EPOCHS}; 0: no live run)",
    )  # fmt: skip
    demo.add_argument(
        "--epoch-seconds", type=float, default=LIVE_EPOCH_SECONDS, metavar="S",
        help=f"seconds per epoch of the live run (default {LIVE_EPOCH_SECONDS:g})",
    )  # fmt: skip
    demo.set_defaults(func=demo_command)
    monitor = sub.add_parser(
        "monitor",
        help="copy runs into a log dir with image summaries, for TensorBoard",
        description="Watch runs and keep a log dir for TensorBoard up to date: links to"
        " every file of every run, and an image summary for every image a run writes"
        " (a new one each time it changes). Run directories are never written to."
        f" Without sources it watches {_DEFAULTS}.",
    )
    monitor.add_argument(
        "sources", nargs="*", help="Guild homes or folders of runs (default: see above)"
    )
    monitor.add_argument(
        "--logdir",
        help="log dir (default: a new temporary one, removed at exit; pass one to keep it)",
    )
    monitor.add_argument(
        "--interval", type=_interval, default=DEFAULT_INTERVAL, help="seconds between passes"
    )
    monitor.add_argument(
        "--once", action="store_true", help="one pass, print what it wrote and where, then exit"
    )
    monitor.set_defaults(func=monitor_command)
    tb = sub.add_parser(
        "tensorboard",
        help="watch runs and show them in TensorBoard (like 'guild tensorboard')",
        description="Watch runs as 'guildimg monitor' does and serve them with"
        " TensorBoard, every image with its history on the step slider; prints"
        f" TensorBoard's URL. Ctrl+C stops it. Without sources it watches {_DEFAULTS}.",
    )
    tb.add_argument(
        "sources",
        nargs="*",
        help="Guild homes or folders of runs (default: see above)",
    )
    tb.add_argument("--port", type=int, help="TensorBoard's port (default: a free one)")
    tb.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    tb.add_argument("--logdir", help="log dir (default: a temporary one, removed at exit)")
    tb.add_argument(
        "--interval", type=_interval, default=DEFAULT_INTERVAL, help="seconds between passes"
    )
    shown = tb.add_argument_group(
        "runs shown",
        "TensorBoard shows the runs every kind of filter given keeps (repeat one to"
        " allow several values), as runs come and go",
    )
    shown.add_argument(
        "-o", "--operation", action="append", default=[], metavar="OP",
        help="runs whose operation holds OP (ignoring case)",
    )  # fmt: skip
    shown.add_argument(
        "-l", "--label", action="append", default=[], metavar="TEXT",
        help="runs whose label holds TEXT (ignoring case)",
    )  # fmt: skip
    shown.add_argument(
        "--status", action="append", default=[], choices=STATUSES,
        help="runs with this status",
    )  # fmt: skip
    shown.add_argument(
        "--started-since", type=since, metavar="WHEN",
        help="runs started since WHEN: an age (30m, 1h, 2d, 1w) or an ISO date or time",
    )  # fmt: skip
    shown.add_argument(
        "--run", action="append", default=[], metavar="ID",
        help="this run: its id, or a prefix of it",
    )  # fmt: skip
    shown.add_argument(
        "--max-runs", type=_max_runs, default=DEFAULT_LIMIT, metavar="N",
        help=f"at most N of them, the newest, and every running one besides (default"
        f" {DEFAULT_LIMIT}; 0: every one)",
    )  # fmt: skip
    tb.set_defaults(func=tensorboard_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)
