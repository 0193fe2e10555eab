"""The ``%guildimg`` line magic, registered by ``%load_ext jupyter_guildimg``.

Every failure the user can cause (a wrong option, a missing path, a run that does not
exist, a server that does not answer) is printed as one line starting with
``guildimg:``, never as a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import rest
from .client import Backend, BackendError, shared_backend

if TYPE_CHECKING:
    from .compare import ImageComparison
    from .widget import GuildImgPanel

__all__ = [
    "GuildImgMagics",
    "last_comparison",
    "last_panel",
    "load_ipython_extension",
    "unload_ipython_extension",
]

log = logging.getLogger(__name__)

_magics: GuildImgMagics | None = None


def _fail(message: str) -> None:
    print(f"guildimg: {message}", file=sys.stderr)


def _clock(seconds: float | None) -> str:
    return "never" if seconds is None else time.strftime("%H:%M:%S", time.localtime(seconds))


def _print_report(report: rest.RefreshReport) -> None:
    print(
        f"Pass took {report['duration']:.3f} s: {report['runs']} runs, {report['images']} images."
    )
    written = report["written"]
    print(f"Wrote {len(written)} image summar{'y' if len(written) == 1 else 'ies'}.")
    for item in written:
        print(f"  {item['run']}: {item['path']}")
    for runs, what in ((report["runs_added"], "added"), (report["runs_removed"], "removed")):
        if runs:
            print(f"Runs {what}: {', '.join(runs)}")
    for problem in report["problems"]:
        where = f"{problem['run']} {problem['path']}".strip()
        print(f"Problem: {where}: {problem['message']}")


def _print_status(backend: Backend, status: rest.Status) -> None:
    monitor, tensorboard = status["monitor"], status["tensorboard"]
    state = "running" if monitor["running"] else "stopped"
    duration = monitor["last_pass_duration"]
    took = "" if duration is None else f" ({duration:.3f} s)"
    print(
        f"Monitor: {state}, a pass every {monitor['interval']:g} s, {monitor['passes']} passes, "
        f"last {_clock(monitor['last_pass'])}{took}"
    )
    print(f"  {monitor['runs']} runs, {monitor['images']} images")
    print(f"  sources: {', '.join(monitor['sources']) or '(none)'}")
    print(f"  log dir: {monitor['logdir']}")
    for problem in monitor["problems"][-5:]:
        print(f"  problem: {problem['run']} {problem['path']}: {problem['message']}")
    line = tensorboard["summary"]
    if tensorboard.get("pid"):
        line += f" (pid {tensorboard['pid']}, port {tensorboard['port']})"
    print(line)
    _print_tensorboard(tensorboard, _selection_line(backend))
    print(f"Backend: {backend.description}")


def _selection_line(backend: Backend) -> str:
    """Which runs TensorBoard shows, or why that is not known: the status is printed
    even when this second request fails."""
    try:
        return _describe_selection(backend.selection())
    except BackendError as e:
        log.debug("No selection for the status", exc_info=True)
        return f"Which runs it shows is not known: {e}"


def _print_tensorboard(state: rest.TensorBoardState, selection: str) -> None:
    """TensorBoard's failure reason (indented), the selection line and its warnings:
    what ``status`` and ``tensorboard`` print after its summary."""
    if state["status"] == "failed" and state["reason"]:
        print("  " + state["reason"].replace("\n", "\n  "))
    print(selection)
    for warning in state.get("warnings", []):
        print(f"  warning: {warning}")


@magics_class
class GuildImgMagics(Magics):
    """``%guildimg``; ``panel`` is the last panel it showed, ``comparison`` the last
    comparison."""

    panel: GuildImgPanel | None = None
    comparison: ImageComparison | None = None

    @magic_arguments()
    @argument(
        "command",
        nargs="?",
        choices=["compare", "refresh", "status", "stop", "tensorboard"],
        help="""compare: show one image (--path) of the runs RUN side by side, one
        revision slider for all, and the difference of two; refresh: run a monitor pass
        now and print what it wrote; status: print the monitor's and TensorBoard's
        state; stop: stop TensorBoard; tensorboard: choose the runs TensorBoard shows
        (--runs, --filter, --auto), start it and say which it shows. Without a command,
        show the panel.""",
    )
    @argument(
        "keys",
        nargs="*",
        metavar="RUN",
        help="""With compare: the runs (ids or unique prefixes; RUN@N pins the run's
        revision N, so RUN@3 RUN compares two revisions of one run).""",
    )
    @argument(
        "--source",
        action="append",
        default=[],
        metavar="PATH",
        help="""Also watch this Guild home or folder of runs (repeatable). Relative
        paths are relative to the notebook's directory.""",
    )
    @argument("--run", metavar="ID", help="Open this run (an id or a unique prefix).")
    @argument("--height", type=int, default=600, metavar="N", help="Height in pixels.")
    @argument(
        "--tab",
        choices=["images", "tensorboard"],
        default="images",
        help="The tab to open (opening the TensorBoard tab starts TensorBoard).",
    )
    @argument(
        "--runs",
        nargs="+",
        metavar="ID",
        help="With tensorboard: show only these runs (ids or unique prefixes).",
    )
    @argument(
        "--filter",
        metavar="TEXT",
        help="""With tensorboard: show the runs whose fields hold every word of TEXT
        (as the run list's filter), as runs come and go.""",
    )
    @argument(
        "--auto",
        action="store_true",
        help="""With tensorboard: show the runs the server's policy picks (every run up
        to its limit, else the newest and every running run).""",
    )
    @argument(
        "--path",
        metavar="IMAGE",
        help="""With compare: the image's path in the runs (default: the first path
        they all have).""",
    )
    @argument(
        "--align",
        choices=["revision", "time"],
        help="""With compare: align the runs by revision number (the default) or by
        time (each shows its revision nearest to the time chosen).""",
    )
    @argument("-h", "--help", action="store_true", help="Show this help.")
    @line_magic
    def guildimg(self, line: str = "") -> None:
        """Show the images of ML runs, and TensorBoard, in the notebook.

        The monitor is the Jupyter server's (the jupyter_guildimg server extension),
        or, when no server extension is reachable, one started in this kernel.

        Examples::

          %guildimg                                # runs of the server's sources
          %guildimg --source lightning_logs        # and of one more folder of runs
          %guildimg --run 3f2a9c1b --tab tensorboard
          %guildimg refresh                        # a monitor pass now
          %guildimg tensorboard --runs 3f2a9c1b 71d0  # TensorBoard shows these two runs
          %guildimg tensorboard --filter "train lr=0.1"
          %guildimg compare 3f2a9c1b 71d0 --path samples/grid.png --align time
          %guildimg compare 3f2a9c1b@5 3f2a9c1b --path samples/grid.png
        """
        try:
            args = parse_argstring(self.guildimg, line)
        except (UsageError, ValueError) as e:  # ValueError: unbalanced quotes
            _fail(str(e))
            return
        if args.help:
            print(self.guildimg.__doc__)
            return
        if args.height < 100:
            _fail(f"--height must be at least 100, not {args.height}")
            return
        given = (
            ("runs", bool(args.runs)),
            ("filter", args.filter is not None),
            ("auto", args.auto),
        )
        chosen = [name for name, present in given if present]
        if chosen and args.command != "tensorboard":
            _fail(f"--{chosen[0]} goes with the tensorboard command: %guildimg tensorboard")
            return
        if len(chosen) > 1:
            _fail(f"choose one of --runs, --filter and --auto, not {' and '.join(chosen)}")
            return
        if problem := _compare_problem(args):
            _fail(problem)
            return
        try:
            self._run(args)
        except (FileNotFoundError, BackendError, ValueError) as e:
            _fail(str(e))

    def _run(self, args: Any) -> None:
        backend = shared_backend(args.source)
        if args.command == "refresh":
            _print_report(backend.refresh())
        elif args.command == "status":
            _print_status(backend, backend.status())
        elif args.command == "stop":
            print(backend.stop_tensorboard()["summary"])
        elif args.command == "tensorboard":
            self._tensorboard(backend, args)
        elif args.command == "compare":
            from IPython.display import display

            from .compare import ImageComparison

            path = None if args.path is None else _unquote(args.path)
            comparison = ImageComparison(backend, args.keys, path, align=args.align or "revision")
            if self.comparison is not None:
                self.comparison.close()
            self.comparison = comparison
            display(comparison)
        else:
            from IPython.display import display

            from .widget import GuildImgPanel

            panel = GuildImgPanel(backend, run=args.run, height=args.height, tab=args.tab)
            self.panel = panel
            display(panel)

    @staticmethod
    def _tensorboard(backend: Backend, args: Any) -> None:
        """Choose TensorBoard's runs first (it then starts on them), start it, and say
        what it shows."""
        if args.runs:
            selection = backend.set_selection("runs", runs=args.runs)
        elif args.filter is not None:
            selection = backend.set_selection("filter", filter=_unquote(args.filter))
        elif args.auto:
            selection = backend.set_selection("auto")
        else:
            selection = backend.selection()
        state = backend.start_tensorboard()
        print(state["summary"])
        _print_tensorboard(state, _describe_selection(selection))


def _compare_problem(args: Any) -> str | None:
    """What is wrong with the compare command's arguments, or with giving them to
    another command (None when nothing is)."""
    if args.command == "compare":
        return None if args.keys else "compare needs at least one RUN: %guildimg compare RUN…"
    if args.keys:
        return f"unrecognized arguments: {' '.join(args.keys)}"
    for option in ("path", "align"):
        if getattr(args, option) is not None:
            return f"--{option} goes with the compare command: %guildimg compare RUN… --{option}"
    return None


def _unquote(text: str) -> str:
    """``text`` without the quotes around it: IPython keeps them on a magic's
    arguments (``--filter "train lr=0.1"`` gives ``"train lr=0.1"``)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _describe_selection(selection: rest.Selection) -> str:
    """One line: how many runs TensorBoard shows, and by which rule (the server's words)."""
    return f"It shows {selection['summary']} ({selection['rule']})."


def last_panel() -> GuildImgPanel | None:
    """The panel ``%guildimg`` showed last (None before it showed one)."""
    return None if _magics is None else _magics.panel


def last_comparison() -> ImageComparison | None:
    """The comparison ``%guildimg compare`` showed last (None before it showed one)."""
    return None if _magics is None else _magics.comparison


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%guildimg`` (``%load_ext jupyter_guildimg``)."""
    global _magics
    _magics = GuildImgMagics(ipython)
    ipython.register_magics(_magics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%guildimg`` and close the panel and the comparison it showed last
    (``%unload_ext``)."""
    global _magics
    ipython.magics_manager.magics["line"].pop("guildimg", None)
    magics, _magics = _magics, None
    if magics is not None:
        ipython.magics_manager.registry.pop(type(magics).__name__, None)
        for shown in (magics.panel, magics.comparison):
            if shown is not None:
                shown.close()
