"""The monitor host: a :class:`~.service.MonitorService` in a process of its own.

A Jupyter server that ran the monitor in its own threads answered its own requests
2-3x slower while a large home was indexed, however little CPU those threads took:
every thread of the monitor competes with Jupyter's event loop for one interpreter
lock. In a process of its own, the monitor shares nothing with Jupyter but the CPUs.

The host is ``python -c`` of this installation's interpreter running
:func:`child_main`. It talks over its stdin and stdout in messages, each a 4-byte
big-endian length and a pickle (both ends are this package; nothing else writes
there: the child's own ``sys.stdout`` goes to its stderr):

- to the host: ``("start", ServiceSettings, log_level)`` once, then ``("call", id,
  name, args)`` for any name in :data:`CALLS`, and ``("stop", timeout)``;
- from the host: ``("ready",)`` once the service started, ``("result", id, value)``
  or ``("error", id, class_name, message)`` for each call (a class in
  :data:`~.service.SERVICE_ERRORS`, else ``"ServiceError"``), ``("changed",
  generation, files_needed)`` whenever the generation went up, ``("log", record)``
  for each log record of this package (a dict for :func:`logging.makeLogRecord`), and
  ``("stopped", clean)`` last.

The host ends when its stdin closes (its server exited, however abruptly): no host
outlives its server. Calls run in a few threads of the host's own, so a long pass
does not hold up a listing.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import queue
import struct
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import IO, Any

from .processes import child_environment
from .service import SERVICE_ERRORS, MonitorService, ServiceSettings

__all__ = [
    "CALLS",
    "SERVER_LOG",
    "child_main",
    "host_environment",
    "read_message",
    "write_message",
]

log = logging.getLogger(__name__)

# The service's calls a server may make (and nothing else of it).
CALLS = frozenset(
    {
        "status",
        "runs_body",
        "run",
        "images",
        "image",
        "thumbnail",
        "run_pass",
        "selection",
        "put_selection",
        "sources",
        "add_source",
        "remove_source",
    }
)
# The logger whose lines the server shows in its own log (what is watched, and how).
SERVER_LOG = "jupyter_guildimg.server_log"
_HEADER = struct.Struct(">I")
_CALL_THREADS = 8
_MAX_QUEUED_LOGS = 10_000  # a server not reading its host's log loses lines, not memory


def write_message(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    """Write one message (see the module's docstring) and flush."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None once the stream ended (mid-message too)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    message = pickle.loads(data)
    return message if isinstance(message, tuple) else None


def host_environment(tmpdir: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host's environment: TensorBoard's (:func:`~.processes.child_environment`)
    and what the sources need besides: ``AWS_*`` (object stores' endpoint and
    credentials: listing and fetching is the host's job), ``XDG_*`` and ``GUILD_HOME``.
    Never Jupyter's token, whose names hold TOKEN. The host gives its own index and
    listing children TensorBoard's environment, without AWS_*."""
    source = os.environ if environ is None else environ
    env = child_environment(tmpdir, source)
    for name, value in source.items():
        if name.startswith(("AWS_", "XDG_")) or name == "GUILD_HOME":
            env[name] = value
    return env


class _Outbox:
    """What the host sends, written by one thread of its own: a caller never waits
    for the server to read (a monitor thread announcing a change least of all).
    Log records beyond :data:`_MAX_QUEUED_LOGS` unsent are dropped."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._logs_queued = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write, name="guildimg-host-out", daemon=True)
        self._thread.start()

    def send(self, message: tuple[Any, ...]) -> None:
        if message[0] == "log":
            with self._lock:
                if self._logs_queued >= _MAX_QUEUED_LOGS:
                    return
                self._logs_queued += 1
        self._queue.put(message)

    def close(self) -> None:
        """Send what is queued, then end the writer (waits for it)."""
        self._queue.put(None)
        self._thread.join()

    def _write(self) -> None:
        while (message := self._queue.get()) is not None:
            if message[0] == "log":
                with self._lock:
                    self._logs_queued -= 1
            try:
                write_message(self._stream, message)
            except (OSError, ValueError):  # the server is gone: stdin's end stops the host
                return


class _Forward(logging.Handler):
    """Sends each record to the server, formatted here (its arguments may not pickle)."""

    def __init__(self, outbox: _Outbox) -> None:
        super().__init__()
        self._outbox = outbox

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": record.getMessage(),
                "created": record.created,
                "threadName": record.threadName,
                "exc_text": self.format_exception(record),
            }
            self._outbox.send(("log", fields))
        except Exception:  # noqa: BLE001 - logging must never raise into the monitor
            self.handleError(record)

    @staticmethod
    def format_exception(record: logging.LogRecord) -> str | None:
        if record.exc_info:
            return logging.Formatter().formatException(record.exc_info)
        return record.exc_text


def _answer(outbox: _Outbox, service: MonitorService, call_id: int, name: str, args: Any) -> None:
    try:
        if name not in CALLS or not isinstance(args, tuple):
            raise LookupError(f"the monitor host has no call {name!r}")
        value = getattr(service, name)(*args)
    except Exception as e:
        kind = type(e).__name__
        if SERVICE_ERRORS.get(kind) is not type(e):
            log.exception("The monitor host's call %s failed", name)
            kind = "ServiceError"
        outbox.send(("error", call_id, kind, str(e)))
    else:
        outbox.send(("result", call_id, value))


def _serve(inbox: IO[bytes], outbox: _Outbox) -> None:
    first = read_message(inbox)
    if first is None or first[0] != "start":
        return
    _tag, settings, level = first
    if not isinstance(settings, ServiceSettings):
        return
    package = logging.getLogger("jupyter_guildimg")
    package.setLevel(level)
    package.addHandler(_Forward(outbox))
    package.propagate = False  # the server logs it; stderr is for what logging cannot say
    # Lines for the server's own log, which shows INFO whatever this package's level.
    logging.getLogger(SERVER_LOG).setLevel(logging.INFO)
    service = MonitorService(settings, logging.getLogger(SERVER_LOG))
    service.add_change_listener(
        lambda: outbox.send(("changed", service.generation, service.files_needed()))
    )
    service.start()
    outbox.send(("ready",))
    timeout = 3.0
    # Not a with-block: leaving one waits for every call, a pass in progress too.
    calls = concurrent.futures.ThreadPoolExecutor(
        _CALL_THREADS, thread_name_prefix="guildimg-host-call"
    )
    while (message := read_message(inbox)) is not None:
        if message[0] == "call":
            _tag, call_id, name, args = message
            calls.submit(_answer, outbox, service, call_id, name, args)
        elif message[0] == "stop":
            timeout = float(message[1])
            break
    clean = service.close(timeout)
    calls.shutdown(wait=False, cancel_futures=True)
    outbox.send(("stopped", clean))


def child_main() -> None:
    """The host's entry point (see the module's docstring)."""
    # Our messages get stdout's descriptor to themselves; print() goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    outbox = _Outbox(out)
    code = 0
    try:
        _serve(sys.stdin.buffer, outbox)
    except Exception:  # noqa: BLE001 - said on stderr, which the server reads
        traceback.print_exc()
        code = 1
    finally:
        outbox.close()
    # A pass that did not end in time must not keep the host alive: its server is gone.
    sys.stderr.flush()
    os._exit(code)
