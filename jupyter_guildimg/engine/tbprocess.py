"""TensorBoard as an owned subprocess: started, watched, restarted and stopped by us.

TensorBoard runs in a session (process group) of its own, bound to 127.0.0.1 only;
readiness is polled without blocking the event loop; crashes are restarted with back-off;
a stop ends the whole group; a pid record in the runtime directory lets the next owner
remove a TensorBoard whose owner was killed with SIGKILL. Use a :class:`TensorBoardProcess`
from one event loop; only :meth:`stop_now` is for paths without one (atexit, signals).

TensorBoard gets a minimal environment and a private TMPDIR (see :mod:`.tbprobe`). With
``secret_prefix``, every launch serves under ``<path_prefix>/<random secret>`` so that
only who knows the secret (the Jupyter server's proxy) reaches it: a local user without
it gets 404 from TensorBoard itself. The secret goes to TensorBoard in a 0600 flag file,
never on its command line (readable by every local user in /proc); it is kept out of
:meth:`~TensorBoardProcess.state`, the pid record and the logs, and TensorBoard's stderr
lines are kept with it masked.

TensorBoard starts with its soft RLIMIT_NOFILE raised to the hard limit (see
:mod:`.tbprobe`); :meth:`~TensorBoardProcess.state` says how many files it may open, how
many the owner's ``files_needed`` says it needs, and warns when that nears the limit or
TensorBoard logged files it could not open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import rest
from . import processes, tbprobe
from .tbprobe import Child, status_summary

__all__ = ["StartResult", "TensorBoardProcess", "status_summary"]

log = logging.getLogger(__name__)

_STDERR_LINES = 40
_MESSAGE_LINES = 15
_CRASH_WINDOW = 300.0
_MAX_BACKOFF = 30.0
_STOPPED = "TensorBoard was stopped before it was ready"
_MASK = "<secret>"


@dataclass(frozen=True)
class StartResult:
    """``outcome`` is "started", "failed" or "timed_out"; ``port`` is set only when started;
    ``message`` is "" when started, else why, ending with TensorBoard's last stderr lines."""

    outcome: str
    port: int | None
    message: str


class TensorBoardProcess:
    """One TensorBoard subprocess serving ``logdir`` on 127.0.0.1, owned by this object.

    ``status`` is "stopped", "starting", "ready" or "failed" (``reason`` says why);
    ``port``, ``pid`` and ``url`` are set while a process exists (starting or ready).
    ``path_prefix`` is normalized to "" or "/a/b". ``extra_args`` naming ``--bind_all``,
    ``--host``, ``--port`` or ``--path_prefix`` raise ValueError. With ``secret_prefix``
    each launch serves under ``path_prefix`` + "/<new secret>" (:attr:`served_prefix`).

    TensorBoard's soft RLIMIT_NOFILE is raised to the hard limit unless
    ``raise_file_limit`` is False. ``files_needed``, if given, answers how many event files
    TensorBoard would hold open for what it shows; :meth:`state` calls it, from the event
    loop, so it must be cheap (no walk of the log dir).
    """

    def __init__(
        self,
        logdir: str,
        *,
        path_prefix: str = "",
        extra_args: Sequence[str] = (),
        samples_per_image: int = 100,
        reload_interval: float = 1.0,
        ready_timeout: float = 120.0,
        runtime_dir: str | None = None,
        max_restarts: int = 5,
        python: str = sys.executable,
        host: str = "127.0.0.1",
        port: int | None = None,
        secret_prefix: bool = False,
        files_needed: Callable[[], int] | None = None,
        raise_file_limit: bool = True,
    ) -> None:
        tbprobe.check_extra_args(extra_args)
        self.logdir = os.path.abspath(logdir)  # the pid record must name it unambiguously
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self.extra_args = tuple(extra_args)
        self.samples_per_image = samples_per_image
        self.reload_interval = reload_interval
        self.ready_timeout = ready_timeout
        self.runtime_dir = runtime_dir
        self.max_restarts = max_restarts
        self.python = python
        self.secret_prefix = secret_prefix
        self.files_needed = files_needed
        self.raise_file_limit = raise_file_limit
        self.status: rest.TensorBoardStatus = "stopped"
        self.reason = ""
        self.restarts = 0
        self._child: Child | None = None
        self._dying: list[Child] = []  # ended by stop_now, reaped by the next stop()
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._warnings = tbprobe.StderrWarnings()
        self._supervisor: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[StartResult]] = []
        self._lock = asyncio.Lock()  # start and stop never interleave
        self._stopping = False  # the owner wants no process: a crash is not restarted
        # Only the command line (a terminal user's choice) sets another host; the
        # server extension never does. A given port is tried first.
        self.host = host
        self._reach = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
        self._last_port: int | None = port

    @property
    def port(self) -> int | None:
        return self._child.port if self._child is not None else None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def served_prefix(self) -> str:
        """The path TensorBoard serves under now: ``path_prefix``, plus "/<secret>" with
        ``secret_prefix`` while a process exists. For the proxy only: never show or log it."""
        child = self._child
        return self.path_prefix + (f"/{child.secret}" if child and child.secret else "")

    @property
    def url(self) -> str | None:
        """TensorBoard's address while a process exists (secret included: see
        :attr:`served_prefix`)."""
        port = self.port
        return None if port is None else f"http://{self._reach}:{port}{self.served_prefix}/"

    @property
    def file_limit(self) -> int:
        """The soft RLIMIT_NOFILE TensorBoard got, as it reported; without a process (or
        before it reported), the one a TensorBoard started now would get."""
        child = self._child
        if child is not None and child.file_limit is not None:
            return child.file_limit
        return tbprobe.next_file_limit(self.raise_file_limit)

    def state(self) -> rest.TensorBoardState:
        """A JSON-able snapshot: status, reason, port, pid, restarts, stderr_tail,
        started, ``summary`` (the sentence clients show: :func:`status_summary`),
        ``files`` (``needed``: what ``files_needed`` says, 0 without it; ``limit``:
        :attr:`file_limit`) and ``warnings``: when ``needed`` is above
        :data:`~.tbprobe.FILES_WARNING_SHARE` of ``limit``, the sentence saying so and
        what to do (:func:`~.tbprobe.files_warning`), then TensorBoard's own lines about
        files it could not open or read since it started (:class:`~.tbprobe.StderrWarnings`)."""
        started = self._child.started if self._child is not None else None
        needed, limit = self._needed(), self.file_limit
        sentence = tbprobe.files_warning(needed, limit, lambda: tbprobe.count_runs(self.logdir))
        warnings = [sentence] if sentence else []
        warnings.extend(self._warnings.sentences())
        return {
            "status": self.status,
            "summary": status_summary(self.status, self.reason),
            "reason": self.reason,
            "port": self.port,
            "pid": self.pid,
            "restarts": self.restarts,
            "stderr_tail": list(self._stderr),
            "started": started,
            "files": {"needed": needed, "limit": limit},
            "warnings": warnings,
        }

    def _needed(self) -> int:
        if self.files_needed is None:
            return 0
        try:
            return max(0, int(self.files_needed()))
        except Exception:
            log.warning("files_needed failed; counting 0 files", exc_info=True)
            return 0

    async def start(self) -> StartResult:
        """Start TensorBoard unless it runs; return once it is ready, failed or timed out.

        Concurrent calls share one start and its result; cancelling a caller does not
        cancel the start. During a restart after a crash this waits for that restart.
        After "failed" or "stopped" it starts afresh, with the crash count reset."""
        async with self._lock:
            if self.status == "ready":
                return StartResult("started", self.port, "")
            if self._supervisor is None or self._supervisor.done():
                self._stopping, self.restarts, self.reason = False, 0, ""
                self.status = "starting"
                self._supervisor = asyncio.create_task(self._supervise())
            waiter: asyncio.Future[StartResult] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        return await waiter

    async def restart(self) -> StartResult:
        """Stop TensorBoard if it runs, then start a new one."""
        await self.stop()
        return await self.start()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to TensorBoard's process group, SIGKILL after ``grace`` s; reap it and
        remove its record. Idempotent. A start() waiting meanwhile returns "failed"."""
        async with self._lock:
            self._stopping = True
            if self._supervisor is not None and not self._supervisor.done():
                self._supervisor.cancel()
                await asyncio.wait({self._supervisor})
            if self._child is not None:
                await self._terminate(self._child, grace)
            for child in self._dying:
                await asyncio.wait({child.exited}, timeout=grace)
                await self._reap(child)
            self._dying.clear()
            self.status, self.reason = "stopped", ""

    def stop_now(self, grace: float = 5.0) -> None:
        """Like :meth:`stop`, blocking and without needing a running event loop. The process
        group is gone on return; the leader is reaped by asyncio's child watcher (or the
        next :meth:`stop`), since it is the loop's child."""
        self._stopping = True  # should the loop run again, the supervisor must not restart
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            with contextlib.suppress(RuntimeError):  # loop closed: the task never runs again
                supervisor.get_loop().call_soon_threadsafe(supervisor.cancel)
        child, self._child = self._child, None
        if child is not None:
            if child.proc.returncode is None:
                processes.kill_group_now(child.pid, grace)
            processes.remove_record(child.record)
            child.record = None
            processes.remove_private_dir(child.private_dir)
            self._dying.append(child)
        self.status, self.reason = "stopped", ""

    @staticmethod
    def cleanup_orphans(runtime_dir: str) -> list[int]:
        """For each record in ``runtime_dir`` whose owner is gone: end the recorded
        process group if its pid still runs TensorBoard on the recorded log dir (a reused
        pid is never touched), and remove the record. Records of live owners stay.
        Returns the pids killed. Blocks, up to 5 s per orphan that ignores SIGTERM."""
        return processes.cleanup_orphans(runtime_dir)

    def _settle(self, result: StartResult) -> None:
        """Answer every start() waiting."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)

    def _give_up(self, result: StartResult) -> None:
        log.warning("TensorBoard failed: %r", result.message)
        self.status, self.reason = "failed", result.message
        self._settle(result)

    def _tail(self) -> str:
        lines = list(self._stderr)[-_MESSAGE_LINES:]
        return "\n".join(["Its stderr ends with:", *lines]) if lines else "It wrote no stderr."

    async def _supervise(self) -> None:
        """Launch TensorBoard; relaunch it after each crash with back-off until too many
        crashes fall within the window. A failed first launch is final."""
        crashes: deque[float] = deque()
        launched = False
        try:
            while not self._stopping:
                result = await self._launch()
                child = self._child
                if result.outcome == "started" and child is not None:
                    launched = True
                    self.status = "ready"
                    self._settle(result)
                    await asyncio.wait({child.exited})
                    if self._stopping:
                        return
                    await self._reap(child)
                    how = processes.describe_exit(child.exited.result())
                    last = f"TensorBoard {how}. {self._tail()}"
                    log.warning("TensorBoard pid %s crashed: %r", child.pid, last)
                elif not launched:
                    self._give_up(result)
                    return
                else:
                    last = result.message
                now = time.monotonic()
                crashes.append(now)
                while crashes[0] < now - _CRASH_WINDOW:
                    crashes.popleft()
                if len(crashes) >= self.max_restarts:
                    message = f"TensorBoard exited {len(crashes)} times; last error: {last}"
                    self._give_up(StartResult("failed", None, message))
                    return
                self.status = "starting"
                delay = min(_MAX_BACKOFF, 2.0 ** (len(crashes) - 1))
                log.info("Restarting TensorBoard in %s s", delay)
                await asyncio.sleep(delay)
                self.restarts += 1
        except Exception as exc:
            log.exception("TensorBoard supervision failed")
            if self._child is not None:  # no process may outlive its supervision
                processes.signal_group(self._child.pid, signal.SIGKILL)
                self._dying.append(self._child)
                self._child = None
            self._give_up(StartResult("failed", None, f"Internal error: {exc!r}"))
        finally:
            # Stopped (or failed above): no start() may be left waiting.
            self._settle(StartResult("failed", None, self.reason or _STOPPED))

    async def _launch(self) -> StartResult:
        """Spawn TensorBoard and wait until it answers. Unless "started", no process is
        left and ``self._child`` is None."""
        self.status = "starting"
        self._stderr.clear()  # the tail and the warnings must be this process's
        self._warnings.clear()
        secret = secrets.token_urlsafe(24) if self.secret_prefix else ""
        prefix = self.path_prefix + (f"/{secret}" if secret else "")
        try:
            port = self._last_port = processes.free_port(self._last_port)
            # The log dir stays on the command line: orphan clean-up recognizes it there.
            args = [
                "--logdir", self.logdir, "--host", self.host, "--port", str(port),
                "--reload_interval", str(self.reload_interval),
                "--samples_per_plugin", f"images={self.samples_per_image}",
                *self.extra_args,
            ]  # fmt: skip
            child = await tbprobe.spawn(
                self.python,
                args,
                port=port,
                prefix=prefix,
                secret=secret,
                raise_file_limit=self.raise_file_limit,
                keep=self._keep_line,
            )
        except OSError as exc:
            log.warning("Could not start TensorBoard", exc_info=True)
            return StartResult("failed", None, f"Could not start TensorBoard: {exc}")
        self._child = child
        if self._stopping:  # stop_now() ran while we spawned it and found no child to end
            processes.signal_group(child.pid, signal.SIGKILL)
        if self.runtime_dir is not None:  # lets the next owner end it should we die first
            child.record = processes.write_record(
                self.runtime_dir, child.pid, port, self.logdir, child.started, child.cmd,
                private_dir=child.private_dir,
            )  # fmt: skip
        path = f"{self.served_prefix}/data/environment"
        outcome = await tbprobe.await_ready(child, self._reach, path, self.ready_timeout)
        if outcome == "ready":
            # It has read its flags long before it answers: the secret leaves the disk.
            if child.flagfile:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(child.flagfile)
            log.info("TensorBoard pid %s ready on %s port %s", child.pid, self._reach, port)
            return StartResult("started", port, "")
        if outcome == "exited":
            await self._reap(child)
            how = processes.describe_exit(child.exited.result())
            message = f"TensorBoard {how} before it was ready. {self._tail()}"
            return StartResult("failed", None, message)
        await self._terminate(child, 5.0)
        message = f"TensorBoard timed out after {self.ready_timeout:g} s. {self._tail()}"
        return StartResult("timed_out", None, message)

    def _keep_line(self, child: Child, raw: bytes) -> None:
        """Keep one of ``child``'s stderr lines (and log it at debug), its secret masked:
        TensorBoard prints its URL. The launcher's report of the file limit is taken, not
        kept; lines about files TensorBoard could not open or read become warnings."""
        if line := raw.decode(errors="replace").rstrip():
            if (limit := tbprobe.parse_file_limit(line)) is not None:
                child.file_limit = limit
                return
            if child.secret:
                line = line.replace(child.secret, _MASK)
            log.debug("tensorboard[%s]: %r", child.pid, line)
            self._stderr.append(line)
            self._warnings.feed(line)

    async def _terminate(self, child: Child, grace: float) -> None:
        """SIGTERM to the group, SIGKILL after ``grace`` s, then reap."""
        await tbprobe.end(child, grace)
        await self._reap(child)

    async def _reap(self, child: Child) -> None:
        """After ``child`` has exited: finish reading its stderr, remove its record."""
        await asyncio.wait({child.reader}, timeout=1.0)
        processes.remove_record(child.record)
        child.record = None
        processes.remove_private_dir(child.private_dir)
        if self._child is child:
            self._child = None
