"""Processes we own, by process group, what they are given, and what outlives its owner.

A record ``<runtime dir>/jupyter_guildimg-tensorboard-<owner pid>-<pid>.json`` lets
the next owner end a TensorBoard whose owner was killed with SIGKILL. A recorded pid
is only ever signalled while it still runs TensorBoard on the recorded log dir, so a
pid reused by another program is never touched.

TensorBoard gets a minimal environment (no tokens or credentials of the server) and a
private temporary directory (0700) as its ``TMPDIR``: TensorBoard writes its info file,
which names its path prefix, into ``$TMPDIR/.tensorboard-info`` readable by everyone,
and its data server keeps its port file there.

Temporary log dirs are removed by renaming them away and deleting them in a detached
``rm -rf``: a log dir of 10,000 runs takes tens of seconds to delete, longer than a
container's stop timeout, and the rename alone is instant. A dir left by an owner that
died (SIGKILL, a failed start) is removed by the next owner (:func:`clean_stale_dirs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "BACKGROUND_NICENESS",
    "KERNEL_LOGDIR_PREFIX",
    "PRIVATE_DIR_PREFIX",
    "RECORD_PREFIX",
    "REMOVING_SUFFIX",
    "SERVER_LOGDIR_PREFIX",
    "TEMP_LOGDIR_PREFIXES",
    "alive",
    "child_environment",
    "clean_stale_dirs",
    "cleanup_orphans",
    "describe_exit",
    "free_port",
    "kill_group_now",
    "private_dir",
    "read_lines",
    "remove_private_dir",
    "remove_record",
    "remove_tree_soon",
    "runs_tensorboard_on",
    "signal_group",
    "temp_logdir",
    "wait_exit",
    "write_flagfile",
    "write_record",
]

#: How much nicer than the server its helper processes (index and listing children)
#: run: the server's requests, and whatever else the user runs, come first. With two
#: index children on 2 cores, at 5 Jupyter's p95 while indexing doubled (29 ms
#: against 14); at 19 it stays near one child's (~16 ms).
BACKGROUND_NICENESS = 19

log = logging.getLogger(__name__)

RECORD_PREFIX = "jupyter_guildimg-tensorboard-"
PRIVATE_DIR_PREFIX = "guildimg-tb-"
SERVER_LOGDIR_PREFIX = "guildimg-logdir-"  # the server extension's and the command's
KERNEL_LOGDIR_PREFIX = "guildimg-kernel-"  # a kernel's own monitor
TEMP_LOGDIR_PREFIXES = (SERVER_LOGDIR_PREFIX, KERNEL_LOGDIR_PREFIX)
REMOVING_SUFFIX = ".removing"
_ORPHAN_GRACE = 5.0
# What Python, TensorBoard and its data server need to start and to find their files;
# everything else of the server's environment (tokens, cloud credentials…) stays out.
_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "PYTHONPATH",
        "PYTHONHOME", "PYTHONNOUSERSITE", "LD_LIBRARY_PATH", "TENSORBOARD_DATA_SERVER_BINARY",
    }
)  # fmt: skip
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")


def free_port(preferred: int | None) -> int:
    """A port on 127.0.0.1 nothing listens on now: ``preferred`` if free (a restarted
    TensorBoard keeps its address), else one the kernel picks. Should another program take
    it before TensorBoard binds, TensorBoard exits and the start reports why."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock, contextlib.suppress(OSError):
            # As TensorBoard's server binds: connections it closed last time may sit in
            # TIME_WAIT on this port, which does not stop a listener from reusing it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", candidate))
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    with contextlib.suppress(ValueError):
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"was killed by signal {-returncode}"


async def wait_exit(proc: asyncio.subprocess.Process) -> int:
    """``proc``'s exit status, once it has exited and its stderr has closed."""
    waiting = asyncio.ensure_future(proc.wait())
    try:
        while not (await asyncio.wait({waiting}, timeout=1.0))[0]:
            if proc.returncode is not None:
                # It is gone but a process it started (TensorBoard's data server) holds
                # stderr open: end the rest of its group.
                signal_group(proc.pid, signal.SIGKILL)
        return waiting.result()
    finally:
        waiting.cancel()


async def read_lines(stream: asyncio.StreamReader, keep: Callable[[bytes], None]) -> None:
    """Call ``keep`` with every line of ``stream`` until EOF. Reads chunks, not lines: a
    line longer than the stream's limit must not stop us."""
    partial = b""
    while chunk := await stream.read(65536):
        *lines, partial = (partial + chunk).split(b"\n")
        if len(partial) > 65536:  # no end of line in sight: keep it as a line
            lines, partial = [*lines, partial], b""
        for raw in lines:
            keep(raw)
    keep(partial)


def child_environment(tmpdir: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment TensorBoard is started with: from ``environ`` (default
    ``os.environ``) only PATH, HOME, user and locale names (``LANG``, ``LC_*``, ``TZ``),
    Python's own (``PYTHONPATH``, ``PYTHONHOME``…), ``LD_LIBRARY_PATH`` and
    ``TENSORBOARD_DATA_SERVER_BINARY``, never one whose name holds TOKEN, SECRET,
    PASSWORD, KEY, CREDENTIAL or AUTH, or starts with AWS_; and ``TMPDIR=tmpdir``."""
    env: dict[str, str] = {}
    for name, value in (os.environ if environ is None else environ).items():
        upper = name.upper()
        if name not in _ENV_NAMES and not name.startswith("LC_"):
            continue
        if upper.startswith("AWS_") or any(word in upper for word in _SECRET_WORDS):
            continue
        env[name] = value
    env["TMPDIR"] = tmpdir
    return env


def remove_tree_soon(path: str) -> str | None:
    """Remove the directory ``path`` without waiting: rename it to
    ``<path>.removing`` (instant; the name is free again at once) and delete that in a
    detached ``rm -rf`` (its own session, a minimal environment), which carries on should
    this process exit first; without ``rm``, in a daemon thread. Symbolic links inside are
    removed, never followed. Returns the path being deleted, None if ``path`` is gone."""
    target = path + REMOVING_SUFFIX
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    except OSError:
        # Taken by an earlier removal still running, or not renameable: delete in place.
        log.info("Removing %r in place", path, exc_info=True)
        target = path
    _delete_in_background(target)
    return target


def _delete_in_background(target: str) -> None:
    rm = shutil.which("rm", path=os.defpath)
    if rm is not None:
        try:
            child = subprocess.Popen(
                [rm, "-rf", "--", target],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a signal to our group (Ctrl+C) does not stop it
                env={"PATH": os.defpath, "LC_ALL": "C"},
            )
        except OSError:
            log.warning("Could not start rm for %r; removing it in a thread", target, exc_info=True)
        else:
            # Reaped by a thread should we live on; if we exit first, init adopts it.
            threading.Thread(target=child.wait, name="guildimg-rm", daemon=True).start()
            return
    threading.Thread(target=shutil.rmtree, args=(target, True), daemon=True).start()


def temp_logdir(prefix: str) -> str:
    """A new temporary log dir, ``<prefix><owner pid>-<random>``: the pid tells
    :func:`clean_stale_dirs` whether its owner still lives."""
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def clean_stale_dirs(
    prefixes: Iterable[str],
    in_use: Callable[[str], bool],
    *,
    parent: str | None = None,
    min_age: float = 60.0,
) -> list[str]:
    """Remove (as :func:`remove_tree_soon`) the directories in ``parent`` (default: the
    temporary directory) whose name starts with one of ``prefixes``, that belong to this
    user and are not symbolic links, and that either end in ``.removing`` (a removal cut
    short) or are not ``in_use`` (no live monitor holds their lock) and were made by a
    process that is gone (the pid in a :func:`temp_logdir` name) or, for a name without
    one, are older than ``min_age`` seconds. A live owner keeps its dir even unlocked:
    between making it and locking it, or an older version that never locks. Returns the
    paths being removed."""
    parent = tempfile.gettempdir() if parent is None else parent
    prefixes = tuple(prefixes)
    try:
        names = os.listdir(parent)
    except OSError:
        log.warning("Cannot list %r for stale log dirs", parent, exc_info=True)
        return []
    removed = []
    for name in sorted(names):
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None:
            continue
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        # Another user's entry (or a link planted in a shared /tmp) is never touched.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        if name.endswith(REMOVING_SUFFIX):
            _delete_in_background(path)
            removed.append(path)
            continue
        if _owned_by_the_living(name[len(prefix) :], st.st_mtime, min_age) or in_use(path):
            continue
        log.info("Removing the stale log dir %r", path)
        target = remove_tree_soon(path)
        if target is not None:
            removed.append(target)
    return removed


def _owned_by_the_living(rest: str, mtime: float, min_age: float) -> bool:
    owner, sep, _ = rest.partition("-")
    if sep and owner.isdigit():
        return alive(int(owner))
    return time.time() - mtime < min_age  # no owner named: only its age protects it


def alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not: it has exited and only waits to be reaped."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError:
        return True  # another user's process, or no /proc here: trust kill(pid, 0)
    # The state letter follows the command name, which is in parentheses and may hold ")".
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3] != b"Z"


def runs_tensorboard_on(pid: int, logdir: str) -> bool:
    """Whether ``pid`` still runs TensorBoard on ``logdir`` (a reused pid does not): its
    command line names TensorBoard (``-m tensorboard.main``, or the launcher's code that
    runs it: see :func:`.tbprobe.launch_command`) and holds ``logdir`` as an argument."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="surrogateescape") for a in f.read().split(b"\0")]
    except OSError:
        return False
    return alive(pid) and any("tensorboard" in a for a in args) and logdir in args


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_group_now(pgid: int, grace: float) -> None:
    """SIGTERM to the group, up to ``grace`` s for its leader to end, SIGKILL to the rest.
    Blocks, for paths without an event loop."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # For members that ignored SIGTERM. The leader ended an instant ago at most, so its id
    # cannot have been given to a new group yet.
    signal_group(pgid, signal.SIGKILL)


def remove_record(path: str | None) -> None:
    if path is not None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("Could not remove TensorBoard record %s", path, exc_info=True)


def write_record(
    runtime_dir: str,
    pid: int,
    port: int,
    logdir: str,
    started: float,
    cmd: list[str],
    private_dir: str | None = None,
) -> str | None:
    """Write the record of ``pid`` (renamed into place, never read half written);
    its path, or None if it could not be written (logged). ``private_dir`` (see
    :func:`private_dir`) is removed with an orphan."""
    owner = os.getpid()
    path = os.path.join(runtime_dir, f"{RECORD_PREFIX}{owner}-{pid}.json")
    record: dict[str, Any] = {"owner_pid": owner, "pid": pid, "port": port}
    record.update(logdir=logdir, started=started, cmdline=cmd, private_dir=private_dir)
    try:
        os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
    except OSError:
        log.warning("Could not write TensorBoard record %s", path, exc_info=True)
        return None
    return path


def cleanup_orphans(runtime_dir: str) -> list[int]:
    """End the TensorBoards recorded by owners that are gone; returns their pids."""
    try:
        names = sorted(os.listdir(runtime_dir))
    except FileNotFoundError:
        return []
    killed: list[int] = []
    for name in names:
        if not (name.startswith(RECORD_PREFIX) and name.endswith(".json")):
            continue
        path = os.path.join(runtime_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            owner, pid, logdir = int(record["owner_pid"]), int(record["pid"]), record["logdir"]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("Ignoring unreadable TensorBoard record %s", path, exc_info=True)
            continue
        if alive(owner):
            continue
        if runs_tensorboard_on(pid, logdir):
            log.info("Stopping orphaned TensorBoard pid %s (owner %s is gone)", pid, owner)
            with contextlib.suppress(ProcessLookupError):
                # We start TensorBoard as a session leader: its group id is its pid.
                if os.getpgid(pid) == pid:
                    kill_group_now(pid, _ORPHAN_GRACE)
                else:
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        remove_private_dir(record.get("private_dir"))
        remove_record(path)
    return killed


def private_dir() -> str:
    """A new directory only this user can enter (0700), for TensorBoard's TMPDIR and
    flag file."""
    return tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX)


def write_flagfile(directory: str, flags: Iterable[str]) -> str:
    """Write ``flags`` (one per line) to a new 0600 file in ``directory``, for
    ``--flagfile``: unlike the command line, which every local user can read in /proc."""
    path = os.path.join(directory, "flags")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(f"{flag}\n" for flag in flags))
    return path


def remove_private_dir(path: object) -> None:
    """Remove a directory made by :func:`private_dir` (anything else is left alone)."""
    if isinstance(path, str) and os.path.basename(path).startswith(PRIVATE_DIR_PREFIX):
        shutil.rmtree(path, ignore_errors=True)
