"""One TensorBoard process: how it is started and ended, whether it answers, what it warns
of, and the sentences clients show about it. :mod:`.tbprocess` owns TensorBoard across
launches (supervision, restarts, its state).

**A launch** (:func:`spawn`): a session of its own (a stop ends its data server too), a
minimal environment and a private TMPDIR (see :mod:`.processes`); a path prefix (which may
hold a secret) goes in a 0600 flag file, never on the command line.

**Open files.** TensorBoard's data server keeps one file open per event file, and the
monitor writes one event file per image revision, so under the common soft
``RLIMIT_NOFILE`` of 1024 it drops runs. :func:`launch_command` starts TensorBoard through
a few lines of Python that first raise the soft limit to the hard one in TensorBoard's
own process (not in a ``preexec_fn``, which is unsafe in a server with threads); the data
server it starts inherits it. That launcher reports the limit it got on its first stderr
line (:func:`parse_file_limit`). The command line keeps ``tensorboard.main`` and the log
dir, which is how :func:`.processes.runs_tensorboard_on` recognizes an orphan.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import resource
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import processes

__all__ = [
    "FILES_WARNING_SHARE",
    "Child",
    "StderrWarnings",
    "answers_ok",
    "await_ready",
    "check_extra_args",
    "count_runs",
    "end",
    "files_warning",
    "launch_command",
    "next_file_limit",
    "parse_file_limit",
    "spawn",
    "status_summary",
]

log = logging.getLogger(__name__)

FILES_WARNING_SHARE = 0.9
"""Warn once TensorBoard needs more than this share of the files it may open."""

_LIMIT_MARKER = "guildimg-file-limit "
_MAX_LIMIT = 2**31 - 1  # an unlimited soft limit, as a JSON-friendly number
# Runs in TensorBoard's process, before TensorBoard (`python -m tensorboard.main` made by
# hand). Where the hard limit is unlimited (macOS), the largest of a few that is accepted.
_LAUNCHER = """\
import resource as r, runpy, sys
soft, hard = r.getrlimit(r.RLIMIT_NOFILE)
if {raise_} and soft != r.RLIM_INFINITY:
    for want in ([hard] if hard != r.RLIM_INFINITY else []) + [1 << 20, 10240]:
        if want > soft and (hard == r.RLIM_INFINITY or want <= hard):
            try:
                r.setrlimit(r.RLIMIT_NOFILE, (want, hard))
            except (ValueError, OSError):
                continue
            soft = want
            break
sys.stderr.write("{marker}%d\\n" % (soft if soft != r.RLIM_INFINITY else {unlimited}))
sys.stderr.flush()
runpy.run_module("tensorboard.main", run_name="__main__", alter_sys=True)
"""
# Flags we set ourselves: a second value would move TensorBoard beyond 127.0.0.1, to a
# port we do not poll or to a path without the secret.
_REFUSED_FLAGS = ("bind_all", "host", "port", "path_prefix")

# What every client says about TensorBoard: the summary in state(), rendered as is.
_SUMMARIES = {
    "stopped": "TensorBoard is not running",
    "starting": "Starting TensorBoard…",
    "ready": "TensorBoard is ready",
}
_SUMMARY_REASON_CHARS = 200

# TensorBoard's stderr lines worth a user's attention: out of descriptors (the data
# server's "Failed to open event file …: Os { code: 24 … }", or its listener dying with
# EMFILE), or event files it cannot open or read.
_WORTH_WARNING = re.compile(
    r"too many open files|os error 24|code: 24\b|EMFILE|failed to open event file|"
    r"permission denied|PermissionDenied|failed to read|unable to read|cannot read",
    re.IGNORECASE,
)
# The prefix of a Rust (env_logger) or absl log line: its time stamp, level and origin.
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*|[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]\s*)")
# What varies between lines of one kind: quoted text and paths (the file concerned).
_VARYING = re.compile(r"\"[^\"]*\"|'[^']*'|(?<![\w/])/[^\s:\"']+")
_WARNING_CHARS = 300
_POLL_INTERVAL = 0.25
_PROBE_TIMEOUT = 2.0


def status_summary(status: str, reason: str = "") -> str:
    """The one short sentence every client shows for TensorBoard in ``status``:
    "TensorBoard is not running", "Starting TensorBoard…", "TensorBoard is ready", or
    "TensorBoard failed: " and the first sentence of ``reason`` (the rest of a reason is
    TensorBoard's stderr, which clients show apart)."""
    if status != "failed":
        return _SUMMARIES.get(status, f"TensorBoard is {status}")
    first = _first_sentence(reason)
    return f"TensorBoard failed: {first}" if first else "TensorBoard failed"


def _first_sentence(text: str) -> str:
    """The first line of ``text`` up to its first ". ", at most _SUMMARY_REASON_CHARS."""
    line = text.strip().split("\n", 1)[0].strip()
    end = line.find(". ")
    if end > 0:
        line = line[: end + 1]
    if len(line) > _SUMMARY_REASON_CHARS:
        line = line[: _SUMMARY_REASON_CHARS - 1].rstrip() + "…"
    return line


def check_extra_args(extra_args: Sequence[str]) -> None:
    """Raise ValueError if ``extra_args`` name ``--bind_all``, ``--host``, ``--port`` or
    ``--path_prefix`` (in any of absl's and argparse's spellings)."""
    for arg in extra_args:
        # absl and argparse take "-flag", "--flag" and "--flag=value" alike.
        if arg.startswith("-") and arg.lstrip("-").split("=")[0] in _REFUSED_FLAGS:
            raise ValueError(
                f"TensorBoard argument {arg!r} is not allowed: TensorBoard is always bound "
                "to 127.0.0.1 on a port and path chosen here, and reached through the "
                "Jupyter server"
            )


def launch_command(python: str, args: Sequence[str], raise_file_limit: bool) -> list[str]:
    """The command that runs ``python -m tensorboard.main`` with ``args``; with
    ``raise_file_limit``, with its soft RLIMIT_NOFILE raised to the hard limit first. Its
    first stderr line reports the soft limit TensorBoard got (:func:`parse_file_limit`)."""
    code = _LAUNCHER.format(
        raise_=bool(raise_file_limit), marker=_LIMIT_MARKER, unlimited=_MAX_LIMIT
    )
    return [python, "-c", code, *args]


def parse_file_limit(line: str) -> int | None:
    """The soft limit a :func:`launch_command` reported in ``line``; None for any other line."""
    if line.startswith(_LIMIT_MARKER):
        try:
            return int(line[len(_LIMIT_MARKER) :])
        except ValueError:
            return None
    return None


def next_file_limit(raise_file_limit: bool) -> int:
    """The soft RLIMIT_NOFILE a TensorBoard started now would get, as far as this process
    can tell (the launcher tries further values where the hard limit is unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_LIMIT
    if raise_file_limit and hard != resource.RLIM_INFINITY:
        return max(soft, hard)
    return soft


def count_runs(logdir: str) -> int:
    """The runs in a log dir TensorBoard reads: its directories (symlinked ones too), hidden
    ones left out; 0 if it cannot be listed."""
    try:
        with os.scandir(logdir) as scan:
            return sum(1 for e in scan if not e.name.startswith(".") and _is_dir(e))
    except OSError:
        return 0


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def files_warning(needed: int, limit: int, runs: Callable[[], int]) -> str | None:
    """The sentence for TensorBoard needing ``needed`` open files for the runs it shows
    (``runs()`` of them, asked only then) when it may open ``limit``; None while ``needed``
    is at most :data:`FILES_WARNING_SHARE` of ``limit``."""
    if needed <= FILES_WARNING_SHARE * limit:
        return None
    count = runs()
    shown = "the run shown" if count == 1 else f"the {count:,} runs shown"
    return (
        f"TensorBoard needs about {needed:,} open files for {shown} but may open only "
        f"{limit:,}: show fewer runs (choose the runs in TensorBoard, or lower the "
        "tensorboard_max_runs setting) or raise the hard limit (ulimit -Hn)"
    )


class StderrWarnings:
    """TensorBoard's stderr lines about files: too many open files (EMFILE), event files it
    could not open or read. Each is kept without its log prefix (time, level, origin);
    lines that differ only in quoted text and paths (the file concerned) count as one,
    shown as the first such line with how often it came. At most ``limit`` distinct lines
    are kept; further ones are only counted. Fed from one thread (the event loop)."""

    def __init__(self, limit: int = 5) -> None:
        self.limit = limit
        self._seen: dict[str, tuple[str, int]] = {}  # key -> (first such line, count)
        self._more = 0  # lines of kinds beyond the limit

    def feed(self, line: str) -> bool:
        """Keep ``line`` if it is worth a warning; whether it was."""
        if not _WORTH_WARNING.search(line):
            return False
        text = _LOG_PREFIX.sub("", line.strip(), count=1)
        key = _VARYING.sub("…", text)
        if key in self._seen:
            first, count = self._seen[key]
            self._seen[key] = (first, count + 1)
        elif len(self._seen) < self.limit:
            if len(text) > _WARNING_CHARS:
                text = text[: _WARNING_CHARS - 1].rstrip() + "…"
            self._seen[key] = (text, 1)
        else:
            self._more += 1
        return True

    def clear(self) -> None:
        self._seen.clear()
        self._more = 0

    def sentences(self) -> list[str]:
        """What clients show: "TensorBoard: <line>", with " (N times)" when repeated."""
        out = []
        for text, count in self._seen.values():
            times = f" ({count:,} times)" if count > 1 else ""
            out.append(f"TensorBoard: {text}{times}")
        if self._more:
            lines = "line" if self._more == 1 else "lines"
            out.append(f"TensorBoard: {self._more:,} more {lines} like these in its log")
        return out


@dataclass(eq=False)
class Child:
    """One TensorBoard process, the leader of its own process group (group id = pid)."""

    proc: asyncio.subprocess.Process
    port: int
    cmd: list[str]
    private_dir: str  # its TMPDIR, holding the flag file until it is ready
    flagfile: str  # "" without a path prefix
    secret: str  # "" without a secret prefix
    started: float = field(default_factory=time.time)
    exited: asyncio.Task[int] = field(init=False)  # done once it exited and closed stderr
    reader: asyncio.Task[None] = field(init=False)
    record: str | None = None  # its pid record, if written
    file_limit: int | None = None  # the soft RLIMIT_NOFILE it reported

    @property
    def pid(self) -> int:
        return self.proc.pid


async def spawn(
    python: str,
    args: Sequence[str],
    *,
    port: int,
    prefix: str,
    secret: str,
    raise_file_limit: bool,
    keep: Callable[[Child, bytes], None],
) -> Child:
    """Start ``python -m tensorboard.main`` with ``args`` (which name ``port``) as
    :func:`launch_command` does, serving under ``prefix`` (``secret`` is a part of it to
    keep out of sight); ``keep(child, line)`` gets each of its stderr lines. Raises
    OSError, leaving nothing behind, if it cannot be started."""
    workdir = processes.private_dir()
    try:
        flagfile = processes.write_flagfile(workdir, [f"--path_prefix={prefix}"]) if prefix else ""
        flags = [f"--flagfile={flagfile}"] if flagfile else []
        cmd = launch_command(python, [*args, *flags], raise_file_limit)
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own group: a stop also ends its data server
            env=processes.child_environment(workdir),
        )
    except OSError:
        processes.remove_private_dir(workdir)
        raise
    child = Child(proc, port, cmd, workdir, flagfile, secret)
    child.exited = asyncio.create_task(processes.wait_exit(proc))
    assert proc.stderr is not None
    lines = functools.partial(keep, child)
    child.reader = asyncio.create_task(processes.read_lines(proc.stderr, lines))
    return child


async def await_ready(child: Child, host: str, path: str, timeout: float) -> str:
    """Poll ``path`` until ``child`` answers 200: "ready", "exited" or "timed_out"."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not child.exited.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return "timed_out"
        probe = max(0.05, min(_PROBE_TIMEOUT, remaining))
        if await answers_ok(host, child.port, path, probe):
            return "ready"
        wait = min(_POLL_INTERVAL, max(0.0, deadline - loop.time()))
        await asyncio.wait({child.exited}, timeout=wait)
    return "exited"


async def end(child: Child, grace: float) -> None:
    """SIGTERM to ``child``'s group, SIGKILL after ``grace`` s; returns once it exited."""
    if child.proc.returncode is None:
        processes.signal_group(child.pid, signal.SIGTERM)
        await asyncio.wait({child.exited}, timeout=grace)
    if not child.exited.done():
        log.warning("TensorBoard pid %s ignored SIGTERM for %s s: killing it", child.pid, grace)
        processes.signal_group(child.pid, signal.SIGKILL)
        await asyncio.wait({child.exited})
    # For members that closed stderr and ignored SIGTERM. The leader was reaped an
    # instant ago, so its id cannot have been given to a new group yet.
    processes.signal_group(child.pid, signal.SIGKILL)


async def answers_ok(host: str, port: int, path: str, timeout: float) -> bool:
    """Whether ``GET path`` on ``host:port`` answers 200 within ``timeout`` seconds. A bare
    HTTP/1.0 exchange rather than an HTTP client: nothing may log the URL, which holds
    TensorBoard's secret path, and no proxy from the environment may come in between."""

    async def status_line() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()

    try:
        parts = (await asyncio.wait_for(status_line(), timeout)).split()
    except (OSError, asyncio.TimeoutError):
        return False
    return len(parts) >= 2 and parts[1] == b"200"
