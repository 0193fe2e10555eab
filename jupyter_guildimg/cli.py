"""guildimg: see every image your ML runs write, in TensorBoard and in Jupyter.

It watches Guild homes and folders of runs (PyTorch's runs/, Lightning's
lightning_logs/, Hydra's outputs/), copies links to their files into a log
directory of its own, and adds an image summary for every image a run writes,
a new one each time the image changes. Run directories are never written to."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from . import rest
from ._version import __version__
from .engine import processes
from .engine.catalog import run_key
from .engine.layout import LogDirLockedError, SourceError, logdir_in_use
from .engine.monitor import DEFAULT_INTERVAL, MIN_INTERVAL, RunsMonitor, setup_logging
from .engine.runs import (
    CONVENTIONAL_RUN_FOLDERS,
    Run,
    RunSource,
    combine_sources,
    default_sources,
    open_source,
)
from .engine.view import DEFAULT_LIMIT, TensorBoardView, temp_view_dir
from .guild.demo import LIVE_EPOCH_SECONDS, LIVE_EPOCHS, start_live_run

__all__ = ["main"]

log = logging.getLogger(__name__)

# What --status takes: Guild's statuses (a plain run is running or completed).
_STATUSES = ("running", "completed", "error", "terminated", "pending", "staged")


def _demo(args: argparse.Namespace) -> int:
    from .guild.demo import make_demo_runs

    home = os.path.abspath(args.home)
    if args.fresh or not os.path.isdir(os.path.join(home, "runs")):
        print(f"Making {args.runs} demo runs in the Guild home {home} ...")
        make_demo_runs(home, args.runs)
    if not args.once:
        return _serve_demo(home, args.port, args.live_epochs, args.epoch_seconds)
    logdir = os.path.abspath(args.logdir or os.path.join(home, "..", "logdir"))
    monitor = RunsMonitor(logdir, open_source(f"guild:{home}").list_runs)
    report = monitor.run_pass()
    print(f"\nThe monitor captured {len(report.written)} image(s) from {report.runs} run(s):")
    for name, path in report.written:
        print(f"  {name}  {path}")
    for problem in report.problems:
        print(f"  problem: {problem.run} {problem.path} {problem.message}")
    print(f"\nLog dir: {logdir}\nSee it with:  tensorboard --logdir '{logdir}'")
    return 0 if report.runs else 1


def _serve_demo(home: str, port: int, live_epochs: int, epoch_seconds: float) -> int:
    """JupyterLab (else a bare Jupyter server) on the demo runs, the extension on,
    TensorBoard started, and a live run training ``live_epochs`` epochs of
    ``epoch_seconds`` each meanwhile (none for 0), stopped with the server."""
    # JupyterLab is an optional extra: without it the demo still serves the API
    # and TensorBoard, and says how to get the sidebar.
    lab = importlib.util.find_spec("jupyterlab") is not None
    token = secrets.token_hex(16)
    root = os.path.dirname(home)
    config = os.path.join(root, "jupyter_guildimg_demo_config.py")
    with open(config, "w", encoding="utf-8") as f:
        f.write(_demo_config(home, lab))
    env = dict(os.environ)
    if lab:
        # JupyterLab 4 asks about news in a toast until the setting is answered, whatever
        # news_url says: answer it in the demo's defaults (the user's own settings win).
        config_dir = _demo_lab_defaults(root)
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [config_dir, *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]
        )
    command = [
        sys.executable, "-m", "jupyter", "lab" if lab else "server", "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
        f"--config={config}", f"--IdentityProvider.token={token}",
        # Jupyter refuses root unless told; containers and CI machines often are root.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    print(_demo_message(f"http://127.0.0.1:{port}", token, lab), flush=True)
    # Its own session, and SIGTERM from us: Jupyter's SIGINT handler asks for
    # confirmation on a terminal and, without one, can end without stopping its
    # extensions (and so TensorBoard). SIGTERM always shuts it down cleanly.
    server = subprocess.Popen(command, start_new_session=True, env=env)
    live = start_live_run(home, live_epochs, epoch_seconds) if live_epochs > 0 else None
    if live is not None:
        print(
            f"A live run ({live.run_id[:8]}) trains for {live_epochs} epochs of"
            f" {epoch_seconds:g} s, redrawing its samples.png each epoch.",
            flush=True,
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set() and server.poll() is None:
        stop.wait(0.5)
        if live is not None and live.process.poll() is not None:
            live.wait()  # records how it ended, as Guild does
            live = None
    if live is not None:
        live.terminate()
    if server.poll() is None:
        print("\nStopping Jupyter ...", flush=True)
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


def _demo_config(home: str, lab: bool) -> str:
    """The demo server's config file: the extension on, the demo home its source."""
    config = (
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{'guild:' + home!r}]\n"
        "c.GuildImgApp.tensorboard_autostart = True\n"
    )
    if lab:
        # No network is assumed: JupyterLab would otherwise fetch news and check
        # PyPI for updates, and show a notification asking about it.
        config += (
            "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
            "c.LabApp.news_url = None\n"
        )
    return config


#: JupyterLab settings the demo changes: no news prompt, no update check (no network).
DEMO_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}


def _demo_lab_defaults(root: str) -> str:
    """A Jupyter config dir under ``root`` whose ``labconfig`` gives JupyterLab the
    defaults of :data:`DEMO_LAB_SETTINGS`; returns its path."""
    config_dir = os.path.join(root, "jupyter-config")
    os.makedirs(os.path.join(config_dir, "labconfig"), exist_ok=True)
    path = os.path.join(config_dir, "labconfig", "default_setting_overrides.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(DEMO_LAB_SETTINGS, f, indent=2)
    return config_dir


def _demo_message(base: str, token: str, lab: bool) -> str:
    """What the demo prints: the URL to open, where to click, the direct URLs."""
    direct = (
        f"  TensorBoard  {base}/{rest.TENSORBOARD_PREFIX}/?token={token}\n"
        f"  Runs (API)   {base}/{rest.API_PREFIX}/{rest.RUNS}?token={token}\n"
    )
    stop = "Ctrl+C stops the server, its TensorBoard and the monitor.\n"
    if not lab:
        return (
            "\nJupyterLab is not installed, so this is a plain Jupyter server without"
            " the Guild Images sidebar; pip install 'jupyter_guildimg[lab]' adds it.\n"
            f"Starting Jupyter with the demo runs. Open:\n{direct}"
            f"  Jupyter      {base}/?token={token}\n{stop}"
        )
    return (
        "\nStarting JupyterLab with the demo runs. Open:\n"
        f"  {base}/lab?token={token}\n"
        "then click Guild Images (the picture-frame icon) in the left sidebar for the\n"
        "runs and their images, and Open TensorBoard there (or the command palette:\n"
        '"Guild Images: Open TensorBoard"). Directly:\n'
        f"{direct}{stop}"
    )


def _open_sources(paths: Sequence[str]) -> list[RunSource] | None:
    """The sources named (each must be a directory), else the defaults (what the
    server watches: :func:`default_sources` under the current directory, a missing
    ``runs`` watched until it appears); None, with the reason printed, when a named
    one is not a directory."""
    if not paths:
        return [open_source(text, missing_ok=True) for text in default_sources(os.getcwd())]
    try:
        return [open_source(path) for path in paths]
    except (FileNotFoundError, SourceError) as e:  # SourceError: e.g. s3fs not installed
        print(f"guildimg: {e}", file=sys.stderr)
        return None


def _monitor(args: argparse.Namespace) -> int:
    sources = _open_sources(args.sources)
    if sources is None:
        return 2
    monitor = _locked_monitor(args.logdir, combine_sources(sources), args.interval)
    if monitor is None:
        return 2
    logdir = monitor.logdir
    if args.once:
        try:
            report = monitor.run_pass()
        finally:
            monitor.close()
        print(f"{report.runs} runs, {report.images} images, {len(report.written)} written")
        print(f"Sources: {', '.join(s.path for s in sources)}")
        if args.logdir is None:
            shutil.rmtree(logdir, ignore_errors=True)  # links and summaries only
            print(f"Log dir: {logdir} (temporary, removed; --logdir DIR keeps one)")
        else:
            print(f"Log dir: {logdir}")
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
        monitor.close()
    return 0


def _tensorboard(args: argparse.Namespace) -> int:
    """Monitor and TensorBoard for a terminal user (what ``guild tensorboard`` does).
    TensorBoard reads a view of the runs the filters keep (at most ``--max-runs`` of
    them: the newest, and every running one), which follows runs as they come and go."""
    from .engine.tbprocess import TensorBoardProcess

    sources = _open_sources(args.sources)
    if sources is None:
        return 2
    monitor = _locked_monitor(
        args.logdir, combine_sources(sources), args.interval, revision_steps=True
    )
    if monitor is None:
        return 2
    logdir = monitor.logdir
    view_dir = temp_view_dir(processes.SERVER_LOGDIR_PREFIX, logdir)
    only = RunFilter.of(args)
    view = TensorBoardView(view_dir, logdir, limit=args.max_runs, only=only)
    view.attach(monitor)
    monitor.run_pass()  # TensorBoard opens on a populated view
    monitor.start()
    tensorboard = TensorBoardProcess(
        view_dir, host=args.host, port=args.port, files_needed=view.files_needed
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    async def run() -> int:
        result = await tensorboard.start()
        if result.outcome != "started":
            print(f"guildimg: TensorBoard did not start: {result.message}", file=sys.stderr)
            return 1
        print(f"TensorBoard {tensorboard.url} watching {', '.join(s.path for s in sources)}")
        selection = view.selection()
        kept = "runs" if only is None else "runs the filters keep"
        print(f"It shows {selection['shown']} of {selection['total']} {kept} (Ctrl+C stops it).")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.wait)
        return 0

    try:
        return asyncio.run(_stopping(tensorboard, run()))
    finally:
        monitor.close()
        view.close()
        processes.remove_tree_soon(view_dir)  # its links only, never followed
        if args.logdir is None:
            processes.remove_tree_soon(logdir)  # renamed away now, deleted in the background


def _locked_monitor(
    logdir: str | None, list_runs: Any, interval: float, *, revision_steps: bool = False
) -> RunsMonitor | None:
    """A monitor holding its log dir's lock (``logdir``, else a new temporary one); None,
    with the reason printed, when another monitor holds it."""
    processes.clean_stale_dirs(processes.TEMP_LOGDIR_PREFIXES, logdir_in_use)
    if logdir is None:
        logdir = processes.temp_logdir(processes.SERVER_LOGDIR_PREFIX)
    monitor = RunsMonitor(logdir, list_runs, interval=interval, revision_steps=revision_steps)
    try:
        monitor.acquire_logdir()
    except LogDirLockedError as e:
        print(f"guildimg: {e}", file=sys.stderr)
        return None
    return monitor


async def _stopping(tensorboard: Any, body: Coroutine[Any, Any, int]) -> int:
    try:
        return await body
    finally:
        await tensorboard.stop()


@dataclass(frozen=True)
class RunFilter:
    """The runs ``guildimg tensorboard`` shows, in Guild's spirit: each kind of filter
    given must keep a run (an operation or label holding one of the texts given,
    ignoring case; one of the statuses; started at or after ``started_since``, seconds
    since the epoch; an id, or an id prefix of at least
    :data:`~jupyter_guildimg.rest.MIN_PREFIX` characters, among ``runs``)."""

    operations: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    started_since: float | None = None
    runs: tuple[str, ...] = ()

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunFilter | None:
        """The filter the command line asks for; None when it names none."""
        found = cls(
            tuple(text.lower() for text in args.operation),
            tuple(text.lower() for text in args.label),
            tuple(args.status),
            args.started_since,
            tuple(args.run),
        )
        return None if found == cls() else found

    def __call__(self, run: Run) -> bool:
        operation, label = run.operation.lower(), run.label.lower()
        return (
            (not self.operations or any(text in operation for text in self.operations))
            and (not self.labels or any(text in label for text in self.labels))
            and (not self.statuses or run.status in self.statuses)
            and (
                self.started_since is None
                or (run.started is not None and run.started >= self.started_since)
            )
            and (not self.runs or any(_names(key, run) for key in self.runs))
        )


def _names(key: str, run: Run) -> bool:
    """Whether ``key`` names ``run``: its id, its key in URLs, or a prefix of its id."""
    if key in (run.id, run_key(run)):
        return True
    return len(key) >= rest.MIN_PREFIX and run.id.startswith(key)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _since(text: str, now: float | None = None) -> float:
    """``--started-since``: seconds since the epoch, from an age ("90s", "30m", "1h",
    "2d", "1w": that long before ``now``, default the command's start) or an ISO date or
    time ("2026-12-01", "2026-12-01T14:30"; local time unless it names its zone)."""
    text = text.strip()
    number, unit = text[:-1], text[-1:].lower()
    if unit in _UNITS and number.replace(".", "", 1).isdigit():
        return (time.time() if now is None else now) - float(number) * _UNITS[unit]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an age such as 30m, 1h, 2d or 1w, or an ISO date, not {text!r}"
        ) from None


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
    demo.set_defaults(func=_demo)
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
    monitor.set_defaults(func=_monitor)
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
        "--status", action="append", default=[], choices=_STATUSES,
        help="runs with this status",
    )  # fmt: skip
    shown.add_argument(
        "--started-since", type=_since, metavar="WHEN",
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
    tb.set_defaults(func=_tensorboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
