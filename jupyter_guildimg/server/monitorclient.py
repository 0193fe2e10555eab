"""The server's side of the monitor: the service (:mod:`..engine.service`) in a
process of its own (:class:`HostedMonitor`, the default), or in the server's own
threads (:class:`LocalMonitor`: ``GuildImgApp.monitor_process = False``, or when no
process can start). Both answer the same awaitable :meth:`call`, so the handlers do
not know which runs.

The hosted monitor is restarted when its process ends unasked (after 1 s, then
twice as long each time, at most a minute), watching the sources the last one
watched (those added and removed through the API too); meanwhile calls raise
:class:`MonitorUnavailable` and :attr:`error` says why, with the end of the process's
stderr. Its change counter keeps going up across restarts, so long polls never wait
for a number the new process has not reached.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import itertools
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from .. import rest
from ..engine.monitorhost import SERVER_LOG, host_environment, read_message, write_message
from ..engine.pychild import ChildStart
from ..engine.service import SERVICE_ERRORS, MonitorService, ServiceSettings

__all__ = ["HostedMonitor", "LocalMonitor", "Monitor", "MonitorUnavailable"]

log = logging.getLogger(__name__)

_FIRST_RESTART_DELAY = 1.0
_MAX_RESTART_DELAY = 60.0
_STDERR_LINES = 20


class MonitorUnavailable(RuntimeError):
    """The monitor's process is not running (it ended, and is being restarted)."""


class Monitor(Protocol):
    """What the runtime and the handlers use of a monitor, wherever it runs."""

    error: str
    settings: ServiceSettings

    @property
    def generation(self) -> int: ...

    def files_needed(self) -> int: ...

    def start(self) -> ChildStart | None: ...

    async def status(self) -> rest.MonitorStatus: ...

    async def call(self, name: str, *args: Any) -> Any: ...

    async def stop(self, timeout: float) -> bool: ...


class LocalMonitor:
    """The service in the server's own threads; calls run in the loop's executor."""

    error = ""

    def __init__(self, service: MonitorService, on_change: Callable[[], None]) -> None:
        self.service = service
        self.settings = service.settings
        service.add_change_listener(on_change)

    @property
    def generation(self) -> int:
        return self.service.generation

    def files_needed(self) -> int:
        return self.service.files_needed()

    def start(self) -> None:
        self.service.start()

    async def status(self) -> rest.MonitorStatus:
        status: rest.MonitorStatus = await self.call("status")
        return status

    async def call(self, name: str, *args: Any) -> Any:
        method = getattr(self.service, name)
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(method, *args)
        )

    async def stop(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.service.close, timeout)


class HostedMonitor:
    """The service in a process of its own (:mod:`..engine.monitorhost`).

    ``on_change`` is called (from a thread of this object's) whenever the generation
    went up; ``server_log`` gets the host's lines meant for the server's log."""

    def __init__(
        self,
        settings: ServiceSettings,
        server_log: logging.Logger | logging.LoggerAdapter[Any],
        on_change: Callable[[], None],
    ) -> None:
        self.settings = settings
        self._server_log = server_log
        self._on_change = on_change
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._ids = itertools.count()
        self._base = 0  # what the generations of the processes before this one add up to
        self._generation = 0
        self._files_needed = 0
        self._stopping = False
        self._restart_delay = _FIRST_RESTART_DELAY
        self._restart: threading.Timer | None = None
        self._reader: threading.Thread | None = None
        self._clean = False  # the host said it stopped with its pass ended
        self.error = ""

    @property
    def generation(self) -> int:
        return self._base + self._generation

    def files_needed(self) -> int:
        return self._files_needed

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def start(self) -> ChildStart:
        """Start the host process (it indexes in the background); whether it started,
        else why not. It talks to this object from then on, and is restarted when it
        ends unasked."""
        code = "import jupyter_guildimg.engine.monitorhost as m; m.child_main()"
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=host_environment(tempfile.gettempdir()),
                close_fds=True,
            )
        except OSError as e:
            log.warning("Cannot start the monitor's process", exc_info=True)
            return ChildStart(None, f"cannot start {sys.executable!r}: {e.strerror or e}")
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        level = logging.getLogger("jupyter_guildimg").getEffectiveLevel()
        try:
            write_message(process.stdin, ("start", self.settings, level))
        except OSError:  # it died at once: its reader says why
            log.warning("The monitor's process ended before its settings", exc_info=True)
        with self._lock:
            self._process = process
        stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        threading.Thread(
            target=self._read_stderr,
            args=(process.stderr, stderr),
            name="guildimg-host-err",
            daemon=True,
        ).start()
        self._reader = threading.Thread(
            target=self._read, args=(process, stderr), name="guildimg-host-in", daemon=True
        )
        self._reader.start()
        return ChildStart(process)

    async def status(self) -> rest.MonitorStatus:
        """The service's status, its ``generation`` counted across restarts as
        :attr:`generation` is."""
        status: rest.MonitorStatus = await self.call("status")
        status["generation"] += self._base
        return status

    async def call(self, name: str, *args: Any) -> Any:
        """The service's ``name(*args)``, in the host; raises what it raised (a class of
        :data:`~..engine.service.SERVICE_ERRORS`), MonitorUnavailable while there is
        no host, RuntimeError for anything else."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call_id = next(self._ids)
        with self._lock:
            process = self._process
            if process is None or process.stdin is None or self._stopping:
                raise MonitorUnavailable(self.error or "the monitor's process is not running")
            self._pending[call_id] = (loop, future)
            try:
                write_message(process.stdin, ("call", call_id, name, args))
            except OSError:
                del self._pending[call_id]
                raise MonitorUnavailable(self.error or "the monitor's process ended") from None
        value = await future
        if name in ("add_source", "remove_source"):
            # A process started again watches what this one watches now.
            watched = [f"{item['kind']}:{item['path']}" for item in value["details"]]
            self.settings = dataclasses.replace(self.settings, sources=watched)
        return value

    async def stop(self, timeout: float) -> bool:
        """Ask the host to stop (a pass in progress gets ``timeout`` seconds) and wait
        for it to end; killed if it has not a little after. True when it stopped
        cleanly, its pass ended in time."""
        with self._lock:
            self._stopping = True
            process = self._process
            if self._restart is not None:
                self._restart.cancel()
        if process is None:
            return True
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._stop, process, timeout)

    def _stop(self, process: subprocess.Popen[bytes], timeout: float) -> bool:
        assert process.stdin is not None
        with self._lock, contextlib.suppress(OSError, ValueError):  # gone: a pipe closed
            write_message(process.stdin, ("stop", timeout))
            process.stdin.close()
        try:
            process.wait(timeout + 5.0)
        except subprocess.TimeoutExpired:
            log.warning("The monitor's process did not stop in time; killing it")
            process.kill()
            process.wait()
            return False
        reader = self._reader
        if reader is not None:
            reader.join(5.0)  # it reads the host's last words ("stopped") to the end
        return process.returncode == 0 and self._clean

    # -- the host's messages (in this object's reader threads) -------------

    def _read(self, process: subprocess.Popen[bytes], stderr: collections.deque[str]) -> None:
        assert process.stdout is not None
        started = time.monotonic()
        while (message := read_message(process.stdout)) is not None:
            self._handle(message)
        process.stdout.close()
        code = process.wait()
        self._ended(process, code, stderr, time.monotonic() - started)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind in ("result", "error"):
            with self._lock:
                waiting = self._pending.pop(message[1], None)
            if waiting is not None:
                loop, future = waiting
                if kind == "result":
                    loop.call_soon_threadsafe(_settle, future, message[2], None)
                else:
                    error = SERVICE_ERRORS.get(message[2], RuntimeError)(message[3])
                    loop.call_soon_threadsafe(_settle, future, None, error)
        elif kind == "changed":
            self._generation, self._files_needed = message[1], message[2]
            self._on_change()
        elif kind == "log":
            self._log(message[1])
        elif kind == "ready":
            self.error = ""
        elif kind == "stopped":
            self._clean = bool(message[1])

    def _log(self, fields: dict[str, Any]) -> None:
        record = logging.makeLogRecord(fields)
        if record.name == SERVER_LOG:
            self._server_log.log(record.levelno, "%s", record.msg)
            return
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)

    def _read_stderr(self, stream: IO[bytes], tail: collections.deque[str]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail.append(line)
                log.warning("monitor process: %s", line)
        stream.close()

    def _ended(
        self,
        process: subprocess.Popen[bytes],
        code: int,
        stderr: collections.deque[str],
        lasted: float,
    ) -> None:
        """The host ended: fail what waits on it, and start another unless asked to stop."""
        time.sleep(0.05)  # its last stderr lines, for the message
        with self._lock, contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()  # a write to a dead process: already failed
        with self._lock:
            waiting = list(self._pending.values())
            self._pending.clear()
            self._process = None
            stopping = self._stopping
            if not stopping:
                detail = f": {stderr[-1]}" if stderr else ""
                how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
                self.error = f"the monitor's process ended ({how}){detail}; restarting"
                self._base += self._generation + 1
                self._generation = 0
                if lasted > _MAX_RESTART_DELAY:
                    self._restart_delay = _FIRST_RESTART_DELAY
                delay = self._restart_delay
                self._restart_delay = min(delay * 2, _MAX_RESTART_DELAY)
                self._restart = threading.Timer(delay, self._start_again)
                self._restart.daemon = True
                self._restart.start()
        for loop, future in waiting:
            error = MonitorUnavailable(self.error or "the monitor's process ended")
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future, None, error)
        if not stopping:
            log.error("jupyter_guildimg: %s", self.error)
            self._on_change()  # what clients read may have changed with it

    def _start_again(self) -> None:
        with self._lock:
            if self._stopping:
                return
        result = self.start()
        with self._lock:
            stopping = self._stopping
        if stopping and result.process is not None:  # stopped while this one started
            self._stop(result.process, 0.0)
        if not result.started:
            self.error = f"the monitor's process cannot start: {result.message}"
            log.error("jupyter_guildimg: %s", self.error)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
