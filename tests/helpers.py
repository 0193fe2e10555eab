"""Plain helpers shared by the monitor's tests: images to write into runs, and
what the monitor wrote for a run. Fixtures live in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.auth import Authorizer
from PIL import Image

from jupyter_guildimg.engine.tfevent import EventReader

T = TypeVar("T")

TESTS = Path(__file__).parent
SAMPLES = TESTS / "samples"
RESOURCES = TESTS / "resources"


def png(size: tuple[int, int] = (16, 16), colour: str = "red", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def jpeg(size: tuple[int, int] = (16, 16), colour: str = "blue") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def run_logdir(logdir: str, run_dir: str) -> str:
    """The one log dir whose name starts with the run's short id."""
    short_id = os.path.basename(run_dir)[:8]
    (name,) = [n for n in os.listdir(logdir) if n.startswith(short_id)]
    return os.path.join(logdir, name)


def summaries(logdir: str, run_dir: str) -> list[str]:
    """The run's summary files; [] while its log dir is not made (yet)."""
    short_id = os.path.basename(run_dir)[:8]
    if not os.path.isdir(logdir) or not any(n.startswith(short_id) for n in os.listdir(logdir)):
        return []
    images = os.path.join(run_logdir(logdir, run_dir), ".images")
    return sorted(os.listdir(images)) if os.path.isdir(images) else []


def tags(logdir: str, run_dir: str) -> list[str]:
    images = os.path.join(run_logdir(logdir, run_dir), ".images")
    return [e.summary.value[0].tag for e in EventReader(images)]


def age(path: str, seconds: float) -> None:
    """Make a file look written ``seconds`` ago (past the monitor's racy window)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def tree_digest(root: str) -> str:
    """Everything about a tree a monitor could change: names, kinds, contents, link
    targets, modes and modification times."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)}|{st.st_mode}|{st.st_mtime_ns}".encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def process_running(pid: int) -> bool:
    """Whether ``pid`` runs: a killed process may stay a zombie until its parent
    (for an orphan, init) reaps it, and a zombie does not run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes of any file fail with EFBIG, as on a full disk
    (SIGXFSZ ignored, so it is an error rather than a signal)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


#: Exit status of a :func:`python_with_inotify_limits` child that could not set them.
NO_LIMITS = 77

_SET_LIMITS = """
import sys
for _name, _value in {limits!r}.items():
    try:
        with open("/proc/sys/user/max_inotify_" + _name, "w") as _f:
            _f.write(str(_value))  # this namespace only: the machine's are untouched
    except OSError:
        sys.exit({status})
"""


def python_with_inotify_limits(
    code: str, *args: str, timeout: float = 60, **limits: int
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python child inside a user namespace of its own whose inotify
    limits (``watches=``, ``instances=``) are lowered for real. Skips the test where
    user namespaces cannot be made (``unshare`` missing or forbidden)."""
    import pytest

    prelude = _SET_LIMITS.format(limits=limits, status=NO_LIMITS)
    command = ["unshare", "--user", "--map-root-user", sys.executable, "-c", prelude + code]
    try:
        child = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        pytest.skip("no unshare(1)")
    if child.returncode == NO_LIMITS or "unshare failed" in child.stderr:
        pytest.skip(f"cannot lower inotify limits in a user namespace: {child.stderr.strip()}")
    return child


class ReadOnlyAuthorizer(Authorizer):
    """Allows only "read", as a read-only share (or any restrictive Authorizer) does."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"


async def until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll an async ``condition`` (every 0.2 s, at most ``seconds``) without blocking
    the server's event loop; its first true value. AssertionError naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def monitor_status(guildimg: Any) -> dict[str, Any]:
    """The server extension's monitor status, as ``GET status`` answers it."""
    status: dict[str, Any] = (await guildimg.status())["monitor"]
    return status


async def run_pass(guildimg: Any) -> dict[str, Any]:
    """A monitor pass now, wherever the monitor runs (``POST refresh``'s answer)."""
    report: dict[str, Any] = await guildimg.call("run_pass")
    return report


def start_jupyter_server(
    root: Path, config: str, runtime_dir: Path, **popen: Any
) -> subprocess.Popen[bytes]:
    """A real ``jupyter server`` subprocess on a free port, rooted at ``root``, with
    ``config`` (a config file's text) and its own runtime dir; its output discarded."""
    config_file = root / "jupyter_server_test_config.py"
    config_file.write_text(config)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--port",
            "0",
            f"--config={config_file}",
            f"--ServerApp.root_dir={root}",
        ],
        env=dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **popen,
    )
