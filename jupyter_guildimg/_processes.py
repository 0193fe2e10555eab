"""Processes we own, by process group, and the pid records that outlive their owner.

A record ``<runtime dir>/jupyter_guildimg-tensorboard-<owner pid>-<pid>.json`` lets
the next owner end a TensorBoard whose owner was killed with SIGKILL. A recorded pid
is only ever signalled while it still runs TensorBoard on the recorded log dir, so a
pid reused by another program is never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from typing import Any

__all__ = [
    "RECORD_PREFIX",
    "alive",
    "cleanup_orphans",
    "kill_group_now",
    "remove_record",
    "runs_tensorboard_on",
    "signal_group",
    "write_record",
]

log = logging.getLogger(__name__)

RECORD_PREFIX = "jupyter_guildimg-tensorboard-"
_ORPHAN_GRACE = 5.0


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
    """Whether ``pid`` still runs TensorBoard on ``logdir`` (a reused pid does not)."""
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
    runtime_dir: str, pid: int, port: int, logdir: str, started: float, cmd: list[str]
) -> str | None:
    """Write the record of ``pid`` (renamed into place, never read half written);
    its path, or None if it could not be written (logged)."""
    owner = os.getpid()
    path = os.path.join(runtime_dir, f"{RECORD_PREFIX}{owner}-{pid}.json")
    record: dict[str, Any] = {"owner_pid": owner, "pid": pid, "port": port}
    record.update(logdir=logdir, started=started, cmdline=cmd)
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
        remove_record(path)
    return killed
