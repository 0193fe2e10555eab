"""A first index made in child processes, so the server's own threads keep the GIL.

Making a new run's part of the log dir (symlinks, one event file per image, hparams)
costs about 2 ms of CPU a run, most of it in Python around the system calls; at
10,000 runs the monitor's index threads held the interpreter lock often enough to
triple the latency of Jupyter's own requests. An :class:`IndexChild` is a
``python -c`` running :func:`child_main` process that makes those log dirs
for the monitor and hands each run's :class:`~.runlog.RunLog` back, pickled, in the
order asked. A large index is dealt to up to :data:`INDEX_PROCESSES` of them
(:func:`children_for`, :func:`index_in_children`). The monitor keeps owning
everything: the log dir and its lock, what is listed, every problem (the child
reports them; the monitor files them).

The protocol is pickles over the child's stdin and stdout (a private pipe between
two processes of one user and one installation): first :class:`IndexSettings`, then
``(run, log_dir, name)`` for each run, then ``None``; back, one :class:`IndexedRun`
a run, in the same order, its run pickled as a reference to the job's (the monitor
puts its own :class:`~.runrecord.Run` there instead of loading a copy), written in
batches (``_Batch``: a few tens of runs, or what is made within 50 ms). The child
runs at the lowest priority (``nice`` 19) so the server, and whatever else the user
runs, wins the CPU when both want it, gets the minimal environment TensorBoard gets
(no token), and exits at once when the monitor closes its end: its next write
fails. Whatever it leaves half made is picked up like a log dir after a restart.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from .processes import describe_exit
from .pychild import start_python_child
from .runlog import RunLog, sync_run
from .runrecord import Run

__all__ = [
    "INDEX_PROCESSES",
    "INDEX_THREADS",
    "RUNS_PER_CHILD",
    "IndexChild",
    "IndexSettings",
    "IndexStart",
    "IndexedRun",
    "child_main",
    "children_for",
    "index_in_children",
    "make_run_log",
]

log = logging.getLogger(__name__)

#: Threads that make new runs' log dirs at once (in the child or in the server):
#: creating files waits on the disk with the GIL released, so a few overlap it
#: (more only add contention).
INDEX_THREADS = 2
#: At most this many index children at once (and no more than the CPUs): a child's
#: Python holds its own interpreter lock, so one keeps about one core busy; a second
#: takes a first index of 10,000 runs from ~25 s to ~12 s on 2 cores, and the server
#: still comes first (``BACKGROUND_NICENESS``). One child on 2 CPUs was measured too
#: (``server_idle --rounds 3``, six rounds): Jupyter's p95 while indexing was no
#: better (median 2.6x a server without the extension, as with two), the index took
#: twice as long.
INDEX_PROCESSES = 2
#: One child for each this many new runs: a child's start (~0.5 s of imports) is
#: only worth it for many.
RUNS_PER_CHILD = 1_000
#: A child sends its results in batches (see ``_Batch``) of up to this many bytes
#: (a run of 5 images is ~2.7 KB)...
BATCH_BYTES = 64 * 1024
#: ...or what it has once the oldest waited this long: far less than the index
#: waits between two batches it lists.
BATCH_SECONDS = 0.05
_STDERR_KEPT = 20  # the child's last stderr lines, for the message when it fails
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_JOB_RUN = "run"  # the persistent id of the job's own run in a result


@dataclass(frozen=True)
class IndexSettings:
    """What a new run's log is made with (a monitor's settings of these names)."""

    max_images: int | None
    max_revisions: int | None
    max_image_bytes: int | None
    revision_steps: bool
    images: bool
    hparams: bool


@dataclass
class IndexedRun:
    """A new run's log, made and synced: ``written``, the image paths summarized;
    ``problems``, ``(path, message)`` for the monitor to report under the run's name."""

    run_log: RunLog
    written: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)


def make_run_log(run: Run, log_dir: str, name: str, settings: IndexSettings) -> IndexedRun:
    """Make and sync the log of a run never seen (at ``log_dir``, named ``name``)."""
    run_log = RunLog(
        run,
        log_dir,
        settings.max_images,
        settings.max_revisions,
        settings.max_image_bytes,
        revision_steps=settings.revision_steps,
    )
    problems: list[tuple[str, str]] = []

    def problem(path: str, message: str) -> None:
        problems.append((path, message))

    written = sync_run(
        run_log, run, name, problem, images=settings.images, hparams=settings.hparams
    )
    return IndexedRun(run_log, written, problems)


@dataclass(frozen=True)
class IndexStart:
    """How starting an index child went: ``child`` when it started, else ``None`` and
    ``message`` says why (the monitor then indexes in its own process)."""

    child: IndexChild | None
    message: str = ""


class IndexChild:
    """The child process, from :meth:`start` to :meth:`close`. One monitor thread
    uses it: :meth:`index` once, then :meth:`close` (idempotent, from any thread)."""

    def __init__(self, process: subprocess.Popen[bytes], settings: IndexSettings) -> None:
        self._process = process
        self._settings = settings
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        self._reader = threading.Thread(
            target=self._read_stderr, name="guildimg-index-stderr", daemon=True
        )
        self._reader.start()

    @classmethod
    def start(cls, settings: IndexSettings) -> IndexStart:
        """Start a child; never raises for a child that cannot start."""
        # Not ``-m``: run as __main__, what it pickles back would name classes the
        # monitor cannot import.
        started = start_python_child(
            "the index child", f"import {__name__} as m; m.child_main()", stdin=True
        )
        if started.process is None:
            return IndexStart(None, started.message)
        return IndexStart(cls(started.process, settings))

    @property
    def pid(self) -> int:
        return self._process.pid

    def index(self, jobs: Sequence[tuple[Run, str, str]]) -> Iterator[IndexedRun]:
        """Each job's ``(run, log_dir, name)`` made by the child, in order. Raises
        :class:`ChildProcessError` (the child's exit and last stderr lines) if the
        child fails before the last one: the caller goes on without it."""
        assert self._process.stdin is not None and self._process.stdout is not None
        writer = threading.Thread(
            target=self._send,
            args=(self._process.stdin, list(jobs)),
            name="guildimg-index-send",
            daemon=True,
        )
        writer.start()
        stdout = self._process.stdout
        for run, _log_dir, _name in jobs:
            try:
                result = _ResultUnpickler(stdout, run).load()
            except (EOFError, OSError, pickle.UnpicklingError, ValueError) as e:
                raise ChildProcessError(self._failure(e)) from e
            if not isinstance(result, IndexedRun):
                raise ChildProcessError(self._failure(TypeError(type(result).__name__)))
            yield result

    def _send(self, stdin: IO[bytes], jobs: list[tuple[Run, str, str]]) -> None:
        try:
            with stdin:
                pickle.dump(self._settings, stdin, _PROTOCOL)
                for job in jobs:
                    pickle.dump(job, stdin, _PROTOCOL)
                pickle.dump(None, stdin, _PROTOCOL)
        except (BrokenPipeError, ValueError):
            pass  # the child is gone, or closed: index() says so
        except OSError:
            log.warning("Cannot send runs to the index child", exc_info=True)

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        with self._process.stderr as stderr:
            for raw in stderr:
                line = raw.decode(errors="replace").rstrip()
                if not line:
                    continue
                with self._stderr_lock:
                    self._stderr = [*self._stderr[-(_STDERR_KEPT - 1) :], line]
                log.info("index child: %s", line)

    def _failure(self, error: Exception) -> str:
        self.close()
        self._reader.join(2.0)
        with self._stderr_lock:
            tail = "\n".join(self._stderr)
        code = self._process.returncode
        how = describe_exit(code) if code is not None else f"stopped answering ({error!r})"
        return f"the index child process {how}" + (f": {tail}" if tail else "")

    def close(self) -> None:
        """End the child now and reap it."""
        with contextlib.suppress(OSError):
            self._process.kill()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5.0)


def children_for(runs: int) -> int:
    """How many index children to start for ``runs`` new runs (at least one): one for
    every :data:`RUNS_PER_CHILD`, at most :data:`INDEX_PROCESSES` and the CPUs."""
    return max(1, min(INDEX_PROCESSES, os.cpu_count() or 1, runs // RUNS_PER_CHILD))


def index_in_children(
    children: Sequence[IndexChild], jobs: Sequence[tuple[Run, str, str]]
) -> Iterator[IndexedRun]:
    """Each job made by one of ``children`` (dealt in turn), yielded in the jobs'
    order. Raises :class:`ChildProcessError` as :meth:`IndexChild.index` does, for
    whichever child fails first."""
    count = len(children)
    streams = [child.index(jobs[i::count]) for i, child in enumerate(children)]
    for i in range(len(jobs)):
        yield next(streams[i % count])


class _ResultUnpickler(pickle.Unpickler):
    """Loads a child's result, with ``run`` (the monitor's own) for the job's run."""

    def __init__(self, file: IO[bytes], run: Run) -> None:
        super().__init__(file)
        self._run = run

    def persistent_load(self, pid: object) -> Run:
        if pid != _JOB_RUN:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._run


# -- the child -----------------------------------------------------------------


class _ResultPickler(pickle.Pickler):
    """Pickles a result with ``run``, the job's, as a reference: the monitor has it
    (a result of 5 images loaded in 0.035 ms with a copy of its run, 0.029 ms
    without, in the server's thread that holds the interpreter lock meanwhile)."""

    def __init__(self, file: IO[bytes], run: Run) -> None:
        super().__init__(file, _PROTOCOL)
        self._run = run

    def persistent_id(self, obj: object) -> str | None:
        return _JOB_RUN if obj is self._run else None


def _jobs(stdin: IO[bytes]) -> Iterator[tuple[Run, str, str]]:
    while (job := pickle.load(stdin)) is not None:
        yield job


def _main() -> int:
    """The child: settings and jobs from stdin, one :class:`IndexedRun` a job on
    stdout, in order. Exits 0 when done, or at once when the monitor is gone."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    settings: IndexSettings = pickle.load(stdin)
    jobs = list(_jobs(stdin))

    def make(job: tuple[Run, str, str]) -> IndexedRun:
        run, log_dir, name = job
        return make_run_log(run, log_dir, name, settings)

    pool = concurrent.futures.ThreadPoolExecutor(INDEX_THREADS)
    batch = _Batch(stdout)
    try:
        for made in [pool.submit(make, job) for job in jobs]:
            try:
                result = batch.wait_for(made)
            except Exception:
                batch.send()  # the runs made before the failure are the monitor's
                raise
            batch.add(result)
        batch.send()
    except BrokenPipeError:
        return 0  # the monitor is gone, or no longer wants the rest
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return 0


class _Batch:
    """Results pickled, waiting to go out together. Each write wakes the monitor's
    thread, which takes the interpreter lock from Jupyter's: once a batch instead of
    once a run (with a write a run, that thread's CPU over a 10,000-run index in a
    server was 2.8-3.2 s; with batches, 2.0-2.3 s). A batch goes at
    :data:`BATCH_BYTES`, once its oldest result waited :data:`BATCH_SECONDS`
    (checked while the child waits for its next run too), or when the child is done."""

    def __init__(self, stdout: IO[bytes]) -> None:
        self._stdout = stdout
        self._pending = io.BytesIO()
        self._since = 0.0  # monotonic time the oldest pending result was added

    def wait_for(self, made: concurrent.futures.Future[IndexedRun]) -> IndexedRun:
        """``made``'s result; what is pending goes out if it would wait too long."""
        if self._pending.tell():
            try:
                return made.result(max(self._time_left(), 0.0))
            except concurrent.futures.TimeoutError:
                self.send()
        return made.result()

    def add(self, result: IndexedRun) -> None:
        if not self._pending.tell():
            self._since = time.monotonic()
        _ResultPickler(self._pending, result.run_log.run).dump(result)
        if self._pending.tell() >= BATCH_BYTES or self._time_left() <= 0:
            self.send()

    def _time_left(self) -> float:
        """Seconds until the oldest pending result has waited :data:`BATCH_SECONDS`."""
        return self._since + BATCH_SECONDS - time.monotonic()

    def send(self) -> None:
        if self._pending.tell():
            self._stdout.write(self._pending.getbuffer())
            self._stdout.flush()
            self._pending = io.BytesIO()


def child_main() -> None:
    """The child's entry point; exits the process."""
    code = _main()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    # At once: no waiting for index threads whose work is no longer wanted.
    os._exit(code)
