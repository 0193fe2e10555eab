"""A small project runner that writes Guild-format run directories.

This is a SMALL SUBSET of Guild, not Guild. It reads only the top-level mapping
form of ``guild.yml`` (operation -> ``main`` or ``exec``, ``flags``,
``requires: [{file: NAME}]``), runs an operation as a plain subprocess and lays
out its run directory as Guild does ("Guild runs on disk" in the design notes), so
:class:`jupyter_guildimg.engine.runs.GuildHome` reads it. No models, resources other than
files, batches, remote runs or flag type conversion. Tests, examples and
benchmarks use it; runs are read back with :mod:`jupyter_guildimg.engine.runs` only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from typing import Any

import yaml

from ..engine.runs import GuildHome, Run, default_guild_home, read_guild_run
from .guildfile import (
    command,
    default_label,
    read_opdef,
    required_files,
    resolve_flags,
)

__all__ = ["SOURCE_EXTENSIONS", "Project", "RunFailed", "RunningOp", "write_run"]

log = logging.getLogger(__name__)

SOURCE_EXTENSIONS = (".py", ".yml", ".yaml", ".json", ".txt", ".cfg", ".toml", ".sh")
_MAX_SOURCE_BYTES = 1024 * 1024
_SOURCECODE = ".guild/sourcecode"
# The same YAML as yaml.safe_dump, several times faster when libyaml is there.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RunFailed(RuntimeError):
    """An operation exited non-zero: ``run`` is the finished run, ``output`` its
    combined stdout and stderr."""

    def __init__(self, run: Run, output: str) -> None:
        tail = "\n".join(output.splitlines()[-20:])
        super().__init__(f"{run.operation} run {run.dir} ended {run.status}; output:\n{tail}")
        self.run = run
        self.output = output


def _now_micros() -> int:
    return time.time_ns() // 1000


def _write_text(path: str, text: str) -> None:
    """Write ``path`` whole or not at all: a reader polling a live run must never see
    a truncated attribute (a cut-off ``stopped`` still parses as an int)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_attr(run_dir: str, name: str, value: Any) -> None:
    text = yaml.dump(value, Dumper=_YAML_DUMPER, default_flow_style=False)
    # Pure-Python PyYAML ends a top-level plain scalar with a "..." marker; the YAML
    # means the same without it (as libyaml writes it), and integers stay bare.
    if text.endswith("\n...\n"):
        text = text[:-4]
    _write_text(os.path.join(run_dir, ".guild", "attrs", name), text)


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _file_hexdigest(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relpath(name: str) -> str:
    """``name`` normalized, with ``/``; ValueError unless it stays inside its root."""
    rel = os.path.normpath(name)
    if os.path.isabs(rel) or rel == "." or rel.split(os.sep)[0] == "..":
        raise ValueError(f"{name!r} is not a relative path inside the directory")
    return rel.replace(os.sep, "/")


def _create_run(
    home: str,
    *,
    flags: Mapping[str, Any],
    label: str | None,
    cmd: list[str],
    sourcecode: Mapping[str, bytes],
    required: Mapping[str, str],
    initialized: int,
) -> str:
    """Create ``<home>/runs/<new id>/`` with attrs (but started, stopped and
    exit_status), source code, required-file symlinks and manifest; return it.
    It is not a run to readers until :func:`_publish_run` writes its opref."""
    run_id = uuid.uuid4().hex
    run_dir = os.path.join(home, "runs", run_id)
    os.makedirs(os.path.join(run_dir, ".guild", "attrs"))
    _write_attr(run_dir, "id", run_id)
    _write_attr(run_dir, "initialized", initialized)
    _write_attr(run_dir, "flags", dict(flags))
    _write_attr(run_dir, "label", default_label(flags) if label is None else label)
    _write_attr(run_dir, "cmd", list(cmd))
    manifest = []
    digest = hashlib.md5()
    for rel in sorted(sourcecode):
        data = sourcecode[rel]
        _write_bytes(os.path.join(run_dir, _SOURCECODE, rel), data)
        digest.update(rel.encode() + b"\0" + data)  # paths count: a rename changes it
        sha1 = hashlib.sha1(data).hexdigest()
        manifest.append(shlex.join(["s", f"{_SOURCECODE}/{rel}", sha1, rel]))
    _write_attr(run_dir, "sourcecode_digest", digest.hexdigest())
    for rel, target in sorted(required.items()):
        link = os.path.join(run_dir, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
        sha1 = _file_hexdigest(target, "sha1") if os.path.isfile(target) else ""
        manifest.append(shlex.join(["d", rel, sha1, f"file:{rel}"]))
    _write_text(os.path.join(run_dir, ".guild", "manifest"), "".join(f"{m}\n" for m in manifest))
    return run_dir


def _publish_run(run_dir: str, guildfile: str, guildfile_md5: str, op: str) -> None:
    # Written last: readers skip a directory without opref, so none sees a half-made run.
    opref = shlex.join([f"guildfile:{guildfile}", guildfile_md5, "", op])
    _write_text(os.path.join(run_dir, ".guild", "opref"), opref + "\n")


def _finish_run(run_dir: str, exit_status: int, stopped: int) -> None:
    _write_attr(run_dir, "exit_status", exit_status)
    _write_attr(run_dir, "stopped", stopped)
    # Last: exit_status decides the status before LOCK is looked at.
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(run_dir, ".guild", "LOCK"))


def write_run(
    home: str | os.PathLike[str],
    *,
    op: str,
    flags: Mapping[str, Any] | None = None,
    label: str | None = None,
    started: float | None = None,
    stopped: float | None = None,
    exit_status: int | None = 0,
    project_path: str = "/project/guild.yml",
    files: Mapping[str, bytes] | None = None,
    sourcecode: Mapping[str, bytes] | None = None,
) -> str:
    """Write a finished Guild run into ``<home>/runs/`` without running anything and
    return its directory.

    Times are seconds since the epoch: ``started`` defaults to now, ``stopped`` to
    now but not before ``started``. ``files`` (run-relative path -> bytes) are the
    run's output; ``sourcecode`` goes to ``.guild/sourcecode`` and the manifest.
    ``exit_status=None`` leaves the run unfinished with no LOCK (status "error").
    """
    home = os.path.abspath(os.fspath(home))
    now = time.time()
    started = now if started is None else started
    stopped = max(now, started) if stopped is None else stopped
    guildfile = os.path.abspath(project_path)
    run_dir = _create_run(
        home,
        flags=dict(flags or {}),
        label=label,
        cmd=[],
        sourcecode={_relpath(rel): data for rel, data in (sourcecode or {}).items()},
        required={},
        initialized=round(started * 1e6),
    )
    for name, data in (files or {}).items():
        _write_bytes(os.path.join(run_dir, _relpath(name)), data)
    _write_attr(run_dir, "started", round(started * 1e6))
    if exit_status is not None:
        _finish_run(run_dir, exit_status, round(stopped * 1e6))
    exists = os.path.isfile(guildfile)
    md5 = _file_hexdigest(guildfile, "md5") if exists else hashlib.md5().hexdigest()
    _publish_run(run_dir, guildfile, md5, op)
    return run_dir


class RunningOp:
    """An operation started by :meth:`Project.start`. :meth:`wait` or
    :meth:`terminate` records how it ended (and reaps the process)."""

    def __init__(self, run_dir: str, home: str, process: subprocess.Popen[bytes]) -> None:
        self.run_dir = run_dir
        self.run_id = os.path.basename(run_dir)
        self.home = home
        self.process = process
        self._finished = False

    @property
    def run(self) -> Run:
        """The run as a Guild home lists it now."""
        run = read_guild_run(self.run_dir, self.home)
        if run is None:
            raise FileNotFoundError(f"run {self.run_dir} has been deleted")
        return run

    def wait(self, timeout: float | None = None) -> Run:
        """Wait for the process (``subprocess.TimeoutExpired`` after ``timeout``
        seconds), record its exit status and stop time, return the finished run."""
        exit_status = self.process.wait(timeout)
        if not self._finished:
            _finish_run(self.run_dir, exit_status, _now_micros())
            self._finished = True
            log.debug("Run %s exited with %s", self.run_id, exit_status)
        return self.run

    def terminate(self, timeout: float = 10.0) -> Run:
        """SIGTERM the operation (SIGKILL after ``timeout`` seconds) and return the
        finished run: "terminated", unless it had already ended by itself."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("Run %s ignored SIGTERM; killing it", self.run_id)
                self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        return self.wait()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)  # it leads a session: reach its children too


class Project:
    """A directory holding ``guild.yml``; its operations run into Guild runs under
    ``<home>/runs/``. ``home=None`` means :func:`default_guild_home` at the time of
    each call (``$GUILD_HOME``, else ``~/.guild``)."""

    def __init__(
        self, path: str | os.PathLike[str], home: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.guildfile = os.path.join(self.path, "guild.yml")
        self._home = None if home is None else os.path.abspath(os.fspath(home))

    @property
    def home(self) -> str:
        return default_guild_home() if self._home is None else self._home

    def run(
        self, op: str, flags: Mapping[str, Any] | None = None, *, label: str | None = None
    ) -> Run:
        """Run ``op`` to completion; :class:`RunFailed` if it exits non-zero."""
        run, output = self.run_capture(op, flags, label=label)
        if run.status != "completed":
            raise RunFailed(run, output)
        return run

    def run_capture(
        self, op: str, flags: Mapping[str, Any] | None = None, *, label: str | None = None
    ) -> tuple[Run, str]:
        """Run ``op`` to completion; return the run and its combined output, whatever
        its exit status."""
        running = self.start(op, flags, label=label)
        try:
            run = running.wait()
        except BaseException:
            running.terminate()  # e.g. Ctrl-C, which its own session does not get
            raise
        path = os.path.join(running.run_dir, ".guild", "output")
        with open(path, encoding="utf-8", errors="replace") as f:
            return run, f.read()

    def start(
        self, op: str, flags: Mapping[str, Any] | None = None, *, label: str | None = None
    ) -> RunningOp:
        """Start ``op`` in the background. A bad ``guild.yml``, an unknown operation
        or flag (ValueError) and a missing required file (FileNotFoundError) are
        raised before a run directory is created."""
        home = self.home
        opdef, guildfile_md5 = self._opdef(op)
        values = resolve_flags(op, opdef, flags or {})
        cmd = command(op, opdef, values)
        required = {}
        for name in required_files(opdef.get("requires")):
            rel = _relpath(name)
            required[rel] = os.path.join(self.path, rel)
            if not os.path.exists(required[rel]):
                raise FileNotFoundError(f"{op} requires {name!r}, which is not in {self.path}")
        run_dir = _create_run(
            home,
            flags=values,
            label=label,
            cmd=cmd,
            sourcecode=_collect_sourcecode(self.path, home, skip=set(required)),
            required=required,
            initialized=_now_micros(),
        )
        lock = os.path.join(run_dir, ".guild", "LOCK")
        # Our pid holds the lock until the child's is known: never "error" between.
        _write_text(lock, str(os.getpid()))
        _write_attr(run_dir, "started", _now_micros())
        _publish_run(run_dir, self.guildfile, guildfile_md5, op)
        with open(os.path.join(run_dir, ".guild", "output"), "wb") as output:
            try:
                process = subprocess.Popen(
                    cmd,
                    cwd=run_dir,
                    env=_run_env(run_dir, home),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                output.write(f"cannot start {cmd[0]}: {e}\n".encode())
                output.flush()
                _finish_run(run_dir, 127, _now_micros())
                raise
        _write_text(lock, str(process.pid))
        log.info("Started %s run %s (pid %s)", op, run_dir, process.pid)
        return RunningOp(run_dir, home, process)

    def list_runs(self) -> list[Run]:
        """The runs of this project's ``guild.yml`` in the home, newest first."""
        runs = GuildHome(self.home).list_runs()
        return [run for run in runs if _opref_guildfile(run.dir) == self.guildfile]

    def _opdef(self, op: str) -> tuple[Mapping[str, Any], str]:
        """The definition of ``op`` and the md5 of ``guild.yml``, read afresh."""
        return read_opdef(self.guildfile, op)


def _run_env(run_dir: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [os.path.join(run_dir, _SOURCECODE), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(RUN_DIR=run_dir, RUN_ID=os.path.basename(run_dir), GUILD_HOME=home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _collect_sourcecode(project_dir: str, home: str, skip: set[str]) -> dict[str, bytes]:
    """Project-relative path -> content of the project's source files."""
    home = os.path.realpath(home)
    sources: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(project_dir):
        # Hidden dirs, caches and anything holding runs (a Guild home) are not code.
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and d != "__pycache__"
            and not os.path.isdir(os.path.join(dirpath, d, "runs"))
            and os.path.realpath(os.path.join(dirpath, d)) != home
        ]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, project_dir).replace(os.sep, "/")
            if not name.lower().endswith(SOURCE_EXTENSIONS) or rel in skip:
                continue
            try:
                if os.path.getsize(path) < _MAX_SOURCE_BYTES:
                    with open(path, "rb") as f:
                        sources[rel] = f.read()
            except OSError:
                log.warning("Cannot copy source file %s", path, exc_info=True)
    return sources


def _opref_guildfile(run_dir: str) -> str | None:
    """The guild.yml path (``pkg_name``) of a run's ``guildfile:`` opref."""
    try:
        with open(os.path.join(run_dir, ".guild", "opref"), encoding="utf-8") as f:
            fields = shlex.split(f.read())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    pkg_type, _, pkg_name = fields[0].partition(":") if fields else ("", "", "")
    return pkg_name if pkg_type == "guildfile" else None
