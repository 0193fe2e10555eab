"""``guildimg monitor`` and ``guildimg tensorboard``: watch run sources (those named,
else the defaults the server watches) into a log dir that one monitor at a time
holds (a temporary one, removed at exit, unless ``--logdir`` names one); the
monitor once or until Ctrl+C/SIGTERM, or the monitor with TensorBoard serving a
view of the runs :class:`~.filters.RunFilter` keeps. Errors a user can fix are
one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from ..engine import processes
from ..engine.layout import LogDirLockedError, SourceError, logdir_in_use
from ..engine.monitor import RunsMonitor
from ..engine.runs import RunSource, combine_sources, default_sources, open_source
from ..engine.view import TensorBoardView, temp_view_dir
from .filters import RunFilter

__all__ = ["monitor_command", "tensorboard_command"]


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


def monitor_command(args: argparse.Namespace) -> int:
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


def tensorboard_command(args: argparse.Namespace) -> int:
    """Monitor and TensorBoard for a terminal user (what ``guild tensorboard`` does).
    TensorBoard reads a view of the runs the filters keep (at most ``--max-runs`` of
    them: the newest, and every running one), which follows runs as they come and go."""
    from ..engine.tbprocess import TensorBoardProcess

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
        print(
            f"It shows {selection['shown']} of {selection['total']} {kept} (Ctrl+C stops it).",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        said: set[str] = set()
        while True:
            # TensorBoard's warnings (too many files to open, unreadable files) are
            # said once each: the server shows them on the TensorBoard tab.
            for warning in tensorboard.state()["warnings"]:
                key = _COUNT.sub("", warning)
                if key not in said:
                    said.add(key)
                    print(f"guildimg: warning: {warning}", file=sys.stderr, flush=True)
            if await loop.run_in_executor(None, stop.wait, _WARNINGS_EVERY):
                return 0

    try:
        return asyncio.run(_stopping(tensorboard, run()))
    finally:
        monitor.close()
        view.close()
        processes.remove_tree_soon(view_dir)  # its links only, never followed
        if args.logdir is None:
            processes.remove_tree_soon(logdir)  # renamed away now, deleted in the background


#: Seconds between looks at TensorBoard's warnings.
_WARNINGS_EVERY = 2.0
#: The count a repeated TensorBoard warning ends with: " (1,650 times)".
_COUNT = re.compile(r" \([\d,]+ times\)$")


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
