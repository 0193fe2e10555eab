"""What does the extension cost a real Jupyter server, indexing and idle? (issue 11)

Builds a Guild home of --runs runs × --images images (32-pixel PNG, half in the
run root, half in ``samples/``, every file aged an hour, each run dir last changed
when its run ended, as a run leaves it; the 10 newest runs are
*running*: no exit status and a ``.guild/LOCK`` holding this benchmark's pid), then
starts up to five servers in turn, each a ``jupyter server`` subprocess with its own
config file, token, free port, log file and log dir, over the same home. Right before
each server with the extension it times ``cp -r`` of the home (that server's baseline
for the first pass, in the disk's state of the moment); copies and log dirs are kept
until the end, so no server follows the removal of a large tree.

- A: Jupyter without the extension (``jpserver_extensions = {"jupyter_guildimg":
  False}``), the baseline;
- L: Jupyter without the extension while as many busy loops as the index has
  children run at their niceness (19) during its first latency series: what the
  index's CPU use alone costs Jupyter here (a shared VM's 2 cores), as context for
  B's figure while indexing;
- B: the extension with its defaults (file-system events);
- C: the extension with ``force_polling = True`` (interval 1 s);
- D: the extension with file-system events and ``index_process = False``: the first
  index made in the monitor's own threads, not in index children;
- I: the extension with ``monitor_process = False``: the monitor in the server's own
  threads, as it was before it got a process of its own (``--servers`` picks which
  to start, A always among them).

For each it measures, from the moment the process is started:

1. when Jupyter answers; when ``GET guildimg/api/runs`` lists the 100 newest runs;
   when ``status.monitor.index.done`` (the first full pass is done), the time from
   Jupyter answering to then (the cold pass), and the CPU time the server process
   (and its children: the monitor's process, index children) had used by then
   (runs polled every 0.25 s; status too, but every second, as the sidebar polls
   it, while 3. runs);
2. CPU while idle: after the first pass, --idle-seconds of the process group's CPU
   time (``/proc/<pid>/stat`` utime + stime, every thread; reaped children too) as %
   of one core (TensorBoard is not started);
3. Jupyter's own ``GET /api/contents``: 200 requests spaced 50 ms, p50/p95/max,
   once right after the server answers (while the first pass runs) and once idle;
4. image written → listed by ``GET guildimg/api/runs/<id>/images`` (polled every
   20 ms): --samples new PNGs written one at a time into the running runs.

It prints one table, the servers side by side, with baselines and ratios next to
the figures and the targets of issue 11, and exits 0: it measures, it does not
judge. Other load on the machine shows in the figures: compare ratios.

    python benchmarks/server_idle.py                          # 10,000 runs × 5
    python benchmarks/server_idle.py --runs 200 --images 20
    python benchmarks/server_idle.py --runs 300 --idle-seconds 5 --tmp /var/tmp
    python benchmarks/server_idle.py --servers ABD
    python benchmarks/server_idle.py --servers AB --rounds 3   # A and B three times
    python benchmarks/server_idle.py --drop-caches    # as after a reboot (root)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml
from PIL import Image

from jupyter_guildimg.engine.indexchild import children_for
from jupyter_guildimg.engine.processes import BACKGROUND_NICENESS

__all__ = ["main"]

NEWEST = 100  # "the 100 newest runs listed <= 5 s after the server starts"
RUNNING = 10  # runs marked running (LOCK with our pid): where new images are written
CONTENTS_REQUESTS = 200
CONTENTS_SPACING = 0.05
IMAGE_POLL = 0.02
STATUS_POLL = 0.25
# While Jupyter's latency is measured, status is polled as the sidebar polls it while
# a home is indexed (INDEX_POLL_MS in labextension/src/sidebar.ts), not faster: the
# benchmark's own requests would otherwise weigh on the figure it takes.
SIDEBAR_POLL = 1.0
START_TIMEOUT = 120.0
PASS_TIMEOUT = 1800.0
SAMPLE_TIMEOUT = 60.0
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# -- the Guild home ----------------------------------------------------------


def png(i: int, size: int = 32) -> bytes:
    """A distinct small PNG: a rotated gradient with noise, as a training run writes."""
    rng = random.Random(i)
    gradient = Image.linear_gradient("L").resize((size, size)).rotate(rng.randrange(360))
    noise = Image.effect_noise((size, size), 40 + rng.randrange(40))
    colour = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    out = io.BytesIO()
    colour.save(out, "PNG")
    return out.getvalue()


def _attr(value: Any) -> bytes:
    """An attribute file as Guild (and ``guild.project``) writes it."""
    text = yaml.dump(value, Dumper=_DUMPER, default_flow_style=False)
    if text.endswith("\n...\n"):
        text = text[:-4]
    return text.encode()


@dataclass
class Home:
    path: str
    run_ids: list[str]  # oldest first
    running: list[str]  # run dirs marked running, newest first


def build_home(root: str, runs: int, images: int) -> Home:
    """Write the runs directly (the layout ``guild.project.write_run`` makes, without
    its per-file rename and source code), a few threads at a time: file creation
    releases the GIL."""
    home = os.path.join(root, "guild-home")
    runs_dir = os.path.join(home, "runs")
    os.makedirs(runs_dir)
    pool = [png(i) for i in range(40)]
    opref = (shlex.join(["guildfile:/project/guild.yml", "0" * 32, "", "train"]) + "\n").encode()
    variants = []
    for v in range(10):
        flags = {"lr": round(0.01 * v, 4), "epochs": 10, "arch": "resnet"}
        label = " ".join(f"{k}={flags[k]}" for k in sorted(flags))
        variants.append((_attr(flags), _attr(label)))
    # A second apart, the newest a day old: none stopped in the future (at 100,000
    # runs a day's start put 14,000 of them there, all "ended recently": watched).
    started0 = time.time() - 86400 - runs
    hour_ago = time.time() - 3600
    ids = [uuid.uuid4().hex for _ in range(runs)]
    running = set(range(max(0, runs - RUNNING), runs))
    lock = f"{os.getpid()}\n".encode()

    def write(path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (hour_ago, hour_ago))

    def one(r: int) -> None:
        run_dir = os.path.join(runs_dir, ids[r])
        guild = os.path.join(run_dir, ".guild")
        attrs = os.path.join(guild, "attrs")
        os.makedirs(attrs)
        flags, label = variants[r % 10]
        started = round((started0 + r) * 1e6)
        meta = {
            "id": _attr(ids[r]),
            "initialized": b"%d\n" % started,
            "started": b"%d\n" % started,
            "flags": flags,
            "label": label,
            "cmd": b"[]\n",
        }
        if r not in running:
            meta.update(exit_status=b"0\n", stopped=b"%d\n" % (started + 60_000_000))
        for name, data in meta.items():
            write(os.path.join(attrs, name), data)
        write(os.path.join(guild, "manifest"), b"")
        if r in running:
            write(os.path.join(guild, "LOCK"), lock)
        if images > 1:
            os.mkdir(os.path.join(run_dir, "samples"))
        for i in range(images):
            folder = "" if i % 2 == 0 else "samples"
            write(os.path.join(run_dir, folder, f"img-{i:03d}.png"), pool[(r + i) % len(pool)])
        write(os.path.join(guild, "opref"), opref)  # last: a run to readers from now on
        for sub in (attrs, guild, os.path.join(run_dir, "samples")):
            if os.path.isdir(sub):
                os.utime(sub, (hour_ago, hour_ago))
        # The run dir as a run leaves it: last changed when its last file was written.
        ended = hour_ago if r in running else started / 1e6 + 60
        os.utime(run_dir, (ended, ended))

    with ThreadPoolExecutor(4) as executor:
        for _ in executor.map(one, range(runs), chunksize=64):
            pass
    for path in (runs_dir, home):
        os.utime(path, (hour_ago, hour_ago))
    newest_running = sorted(running, reverse=True)
    return Home(home, ids, [os.path.join(runs_dir, ids[r]) for r in newest_running])


def drop_caches() -> None:
    """Empty the page cache (root only), as after a reboot: every file is read from
    the disk again."""
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def time_cp(home: str, dest: str, cold: bool) -> float:
    """Seconds ``cp -r`` takes to copy the home to ``dest``, from a cold page cache
    with ``cold``. The copy is kept until the benchmark ends: removing a tree this
    size left this machine's disk (ext4, ``discard``) creating files 3× slower for
    minutes, and the server measured next would have paid for it."""
    if cold:
        drop_caches()
    start = time.perf_counter()
    subprocess.run(["cp", "-r", home, dest], check=True)
    return time.perf_counter() - start


# -- a server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in group ``pgid`` (all their threads), plus
    the children each of them reaped (the monitor's process reaps its index children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) != pgid:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped, gone from /proc
    return total / tick


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` itself (every thread; not its children): the
    work done under the server's interpreter lock, or waiting for it."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    cp: float | None = None  # cp -r of the home, timed just before this server
    up: float | None = None
    newest: float | None = None
    first_pass: float | None = None
    cold_pass: float | None = None  # Jupyter answering -> the first index done
    server_cpu: float | None = None  # the server process's CPU s, start to first index done
    group_cpu: float | None = None  # the same with its children (an index child)
    cpu: float | None = None
    contents_indexing: list[float] = field(default_factory=list)
    contents_during_pass: int = 0
    contents_idle: list[float] = field(default_factory=list)
    images: list[float] = field(default_factory=list)
    warm_pass: float | None = None
    poll_interval: float | None = None  # as status says, while polling
    watch: str = ""


class Server:
    """A ``jupyter server`` subprocess in its own process group and temp dir."""

    def __init__(self, root: str, label: str, home: str, config: str) -> None:
        self.dir = os.path.join(root, f"server-{label}")
        for sub in ("tmp", "runtime"):
            os.makedirs(os.path.join(self.dir, sub))
        self.config = os.path.join(self.dir, "jupyter_server_config.py")
        with open(self.config, "w", encoding="utf-8") as f:
            # A log dir of its own, kept until the benchmark ends (see time_cp).
            logdir = os.path.join(self.dir, "logdir")
            f.write(f"c.GuildImgApp.sources = [{'guild:' + home!r}]\n")
            f.write(f"c.GuildImgApp.logdir = {logdir!r}\n{config}")
        self.log = os.path.join(self.dir, "server.log")
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; returns the perf_counter time it was started at."""
        env = dict(
            os.environ,
            # Its temporary log dir and runtime files stay in this benchmark's tree.
            TMPDIR=os.path.join(self.dir, "tmp"),
            JUPYTER_RUNTIME_DIR=os.path.join(self.dir, "runtime"),
        )
        args = [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root"]
        args += [f"--port={self.port}", f"--IdentityProvider.token={self.token}"]
        args += [f"--config={self.config}", f"--ServerApp.root_dir={self.root}"]
        with open(self.log, "wb") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return started

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )

    def stop(self) -> None:
        """SIGTERM its group, SIGKILL after 30 s; then wait for the detached ``rm
        -rf`` of its temporary log dir, so the next server is not measured with it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in its group
        tmp = os.path.join(self.dir, "tmp")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            name.endswith(".removing") for name in os.listdir(tmp)
        ):
            time.sleep(0.2)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def wait_for(condition: Callable[[], bool], seconds: float, what: str, step: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if condition():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")


def contents_latency(server: Server) -> list[tuple[float, float]]:
    """(end time, seconds) of CONTENTS_REQUESTS ``GET /api/contents``, one started
    every CONTENTS_SPACING seconds (or at once when the previous one ran longer)."""
    out = []
    with server.client() as client:
        next_start = time.perf_counter()
        for _ in range(CONTENTS_REQUESTS):
            delay = next_start - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            start = time.perf_counter()
            client.get("/api/contents").raise_for_status()
            end = time.perf_counter()
            out.append((end, end - start))
            next_start = start + CONTENTS_SPACING
    return out


def cpu_load(processes: int) -> list[subprocess.Popen[bytes]]:
    """``processes`` busy loops at the index children's niceness: what the index's
    CPU use alone costs Jupyter on this machine, without any of its other work."""
    loop = f"import os; os.nice({BACKGROUND_NICENESS})\nwhile True: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(processes)]


def measure(
    server: Server, extension: bool, home: Home, args: argparse.Namespace, loaded: bool = False
) -> Figures:
    figures = Figures()
    started = server.start()
    client = server.client()
    assert server.process is not None
    pid = server.process.pid

    def answers() -> bool:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"the server exited ({server.process.returncode})")
        try:
            return client.get("/api/status").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, START_TIMEOUT, "Jupyter to answer", 0.05)
        figures.up = time.perf_counter() - started
        # Right after start: Jupyter's latency while the first pass runs, in a thread
        # while this one watches the API fill.
        indexing: list[tuple[float, float]] = []
        series = threading.Thread(
            target=lambda: indexing.extend(contents_latency(server)), daemon=True
        )
        loads = cpu_load(children_for(args.runs)) if loaded else []
        series.start()
        if extension:
            newest = set(home.run_ids[-NEWEST:])

            status_asked = -math.inf

            def progress() -> bool:
                nonlocal status_asked
                now = time.perf_counter() - started
                if figures.newest is None:
                    listed = {run["id"] for run in client.get("/guildimg/api/runs").json()["runs"]}
                    if newest <= listed:
                        figures.newest = now
                status_every = SIDEBAR_POLL if series.is_alive() else STATUS_POLL
                if figures.first_pass is None and now - status_asked >= status_every:
                    status_asked = now
                    monitor = client.get("/guildimg/api/status").json()["monitor"]
                    if monitor["index"]["done"] and monitor["last_pass"] is not None:
                        figures.first_pass = now
                        # Not the last pass's duration: targeted passes come
                        # before (the newest runs) and may come right after.
                        figures.cold_pass = now - (figures.up or 0.0)
                        figures.server_cpu = process_cpu(pid)
                        figures.group_cpu = group_cpu(pid)
                return figures.newest is not None and figures.first_pass is not None

            wait_for(progress, PASS_TIMEOUT, "the first pass", STATUS_POLL)
        series.join()
        for load in loads:
            load.kill()
            load.wait()
        figures.contents_indexing = [seconds for _end, seconds in indexing]
        if figures.first_pass is not None:
            pass_end = started + figures.first_pass
            figures.contents_during_pass = sum(end <= pass_end for end, _ in indexing)
        time.sleep(2)  # let the watcher settle after the first pass
        cpu0, wall0 = group_cpu(pid), time.perf_counter()
        time.sleep(args.idle_seconds)
        cpu1, wall1 = group_cpu(pid), time.perf_counter()
        figures.cpu = 100 * (cpu1 - cpu0) / (wall1 - wall0)
        figures.contents_idle = [seconds for _end, seconds in contents_latency(server)]
        if extension:
            figures.images = image_latency(server, client, home, args.samples)
            monitor = client.get("/guildimg/api/status").json()["monitor"]
            figures.warm_pass = monitor.get("last_pass_duration")
            figures.poll_interval = monitor.get("poll_interval")
            watch = monitor.get("watch")
            if watch:
                modes = sorted({source["mode"] for source in watch["sources"]})
                figures.watch = f"{'/'.join(modes)}, {watch['watches']} watches"
            else:
                figures.watch = "no watcher"
        return figures
    except Exception:
        print(f"--- server log tail ({server.log}):\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        client.close()
        server.stop()


def image_latency(server: Server, client: httpx.Client, home: Home, samples: int) -> list[float]:
    """Seconds from a new PNG written into a running run to its path listed by the API."""
    rng = random.Random(len(server.dir))
    times = []
    label = os.path.basename(server.dir)
    for i in range(samples):
        run_dir = home.running[i % len(home.running)]
        run_id = os.path.basename(run_dir)
        name = f"{label}-{i:03d}.png"
        data = png(10_000 + i)
        # Samples at random phases of any polling interval or reconciling pass.
        time.sleep(rng.uniform(0.2, 0.7))
        with open(os.path.join(run_dir, name), "wb") as f:
            f.write(data)
        written = time.perf_counter()

        def listed(run_id: str = run_id, name: str = name) -> bool:
            response = client.get(f"/guildimg/api/runs/{run_id}/images")
            return response.status_code == 200 and any(
                image["path"] == name for image in response.json()["images"]
            )

        wait_for(listed, SAMPLE_TIMEOUT, f"{name} to be listed", IMAGE_POLL)
        times.append(time.perf_counter() - written)
    return times


# -- the report ------------------------------------------------------------------

SERVERS = (
    ("A", "no extension", False, 'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": False}\n'),
    (
        "L",
        "no extension, CPU load",
        False,
        'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": False}\n',
    ),
    ("B", "events", True, 'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": True}\n'),
    (
        "C",
        "forced polling",
        True,
        'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": True}\n'
        "c.GuildImgApp.force_polling = True\nc.GuildImgApp.interval = 1.0\n",
    ),
    (
        "D",
        "events, no child",
        True,
        'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": True}\n'
        "c.GuildImgApp.index_process = False\n",
    ),
    (
        "I",
        "monitor in the server",
        True,
        'c.ServerApp.jpserver_extensions = {"jupyter_guildimg": True}\n'
        "c.GuildImgApp.monitor_process = False\n",
    ),
)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    p50, p95, worst = statistics.median(values), _p95(values), max(values)
    return f"{p50 * 1e3:.0f} / {p95 * 1e3:.0f} / {worst * 1e3:.0f} ms"


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}×"


Row = tuple[str, Callable[[Figures], str], str, bool]  # label, cell, target, extension only


def report(
    args: argparse.Namespace,
    build: float,
    results: dict[str, Figures],
    servers: list[tuple[str, str, bool, str]],
) -> None:
    a = results["A"]
    contents_idx = _p95(a.contents_indexing) if a.contents_indexing else None
    contents_idle = _p95(a.contents_idle) if a.contents_idle else None
    rows: list[Row] = [
        ("cp -r of the tree, just before", lambda f: _s(f.cp), "", True),
        ("Jupyter answers", lambda f: _s(f.up), "", False),
        (f"{NEWEST} newest runs listed", lambda f: _s(f.newest), "<= 5 s", True),
        ("first full pass done", lambda f: _s(f.first_pass), "", True),
        ("  ÷ cp -r of the tree", lambda f: _ratio(f.first_pass, f.cp), "<= 2×", True),
        ("first index, from Jupyter answering", lambda f: _s(f.cold_pass), "", True),
        ("  ÷ cp -r of the tree", lambda f: _ratio(f.cold_pass, f.cp), "<= 3×", True),
        (
            "CPU s to the first index done: server / +children",
            lambda f: f"{_s(f.server_cpu)} / {_s(f.group_cpu)}",
            "",
            True,
        ),
        ("idle CPU, % of a core", lambda f: _pct(f.cpu), "B <= 1 %, C <= 10 %", False),
        ("/api/contents indexing p50/p95/max", lambda f: _ms(f.contents_indexing), "", False),
        (
            "  of them before the pass ended",
            lambda f: f"{f.contents_during_pass}/{len(f.contents_indexing)}",
            "",
            True,
        ),
        (
            "  p95 ÷ A's",
            lambda f: _ratio(_p95(f.contents_indexing), contents_idx),
            "<= 2×",
            False,
        ),
        ("/api/contents idle p50/p95/max", lambda f: _ms(f.contents_idle), "", False),
        ("  p95 ÷ A's", lambda f: _ratio(_p95(f.contents_idle), contents_idle), "<= 2×", False),
        (
            "image written → listed, median",
            lambda f: _ms1(f.images, statistics.median),
            "B <= 150 ms",
            True,
        ),
        ("  worst", lambda f: _ms1(f.images, max), "B <= 400 ms; C <= poll interval + pass", True),
        ("last pass duration, at the end", lambda f: _s(f.warm_pass), "", True),
        ("poll interval (status), at the end", lambda f: _s(f.poll_interval), "", True),
        ("sources followed by", lambda f: f.watch or "—", "", True),
    ]
    print(
        f"\n{args.runs} runs × {args.images} images (32 px PNG, {min(RUNNING, args.runs)} "
        f"running), built in {build:.1f} s; idle CPU over "
        f"{args.idle_seconds:g} s; {args.samples} image samples per server; "
        f"{'page cache emptied before cp -r and each server; ' if args.drop_caches else ''}"
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    headers = [f"{key}: {name}" for key, name, _extension, _config in servers]
    width = max(len(row[0]) for row in rows) + 2
    col = max(22, *(len(h) + 2 for h in headers))
    print(f"{'':{width}}" + "".join(f"{h:>{col}}" for h in headers) + "   target")
    for label, cell, target, extension_only in rows:
        cells = [
            "—" if extension_only and not extension else cell(results[key])
            for key, _name, extension, _config in servers
        ]
        print(f"{label:{width}}" + "".join(f"{c:>{col}}" for c in cells) + f"   {target}")


def report_rounds(
    rounds: list[dict[str, Figures]], servers: list[tuple[str, str, bool, str]]
) -> None:
    """Each round's p95 of ``GET /api/contents`` over A's of the same round, while
    indexing and idle: one draw a round, so the spread is the machine's noise."""
    print(f"\n/api/contents p95 ÷ A's, each of {len(rounds)} rounds (median):")
    for phase, series in (
        ("indexing", lambda f: f.contents_indexing),
        ("idle", lambda f: f.contents_idle),
    ):
        for key, _name, _extension, _config in servers:
            if key == "A":
                continue
            ratios = [
                _p95(series(results[key])) / _p95(series(results["A"]))
                for results in rounds
                if series(results[key]) and series(results["A"])
            ]
            if ratios:
                listed = ", ".join(f"{r:.2f}×" for r in ratios)
                print(f"  {key} {phase}: {listed} ({statistics.median(ratios):.2f}×)")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _ms1(values: list[float], pick: Callable[[list[float]], float]) -> str:
    return "—" if not values else f"{pick(values) * 1e3:.0f} ms"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=5, help="images per run")
    parser.add_argument("--samples", type=int, default=10, help="images written per server")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--tmp", default=None, help="where the temporary tree goes")
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="empty the page cache before cp -r and each server (root only): a cold start",
    )
    parser.add_argument(
        "--servers", default="ALBCD", help="which servers to start, in order (A is added)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="start the servers this many times in turn: the table is the last round's, "
        "and the p95 ratios of every round are listed after it (one draw a round)",
    )
    args = parser.parse_args()
    known = {key for key, *_rest in SERVERS}
    if not set(args.servers) <= known:
        parser.error(f"--servers takes letters of {''.join(sorted(known))}")
    chosen = [server for server in SERVERS if server[0] in set(args.servers) | {"A"}]
    if args.runs < 1 or args.images < 1 or args.samples < 1 or args.rounds < 1:
        parser.error("--runs, --images, --samples and --rounds must be at least 1")
    # A SIGTERM (from `timeout`, say) unwinds through the finally below, so the
    # servers this run started are stopped instead of outliving it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    root = tempfile.mkdtemp(prefix="guildimg-server-idle-", dir=args.tmp)
    servers: list[Server] = []
    try:
        print(f"building {args.runs} runs × {args.images} images in {root} ...", file=sys.stderr)
        start = time.perf_counter()
        home = build_home(root, args.runs, args.images)
        build = time.perf_counter() - start
        print(f"built in {build:.1f} s", file=sys.stderr)
        rounds: list[dict[str, Figures]] = []
        for round_ in range(args.rounds):
            results: dict[str, Figures] = {}
            for key, name, extension, config in chosen:
                label = key if args.rounds == 1 else f"{key}{round_ + 1}"
                cp = None
                if extension:  # its baseline, in the disk's state of the moment
                    print(f"cp -r for {label} ...", file=sys.stderr)
                    cp = time_cp(home.path, os.path.join(root, f"cp-{label}"), args.drop_caches)
                print(f"server {label} ({name}) ...", file=sys.stderr)
                server = Server(root, label, home.path, config)
                if args.drop_caches:
                    drop_caches()
                servers.append(server)
                results[key] = measure(server, extension, home, args, loaded=key == "L")
                results[key].cp = cp
                server.stop()  # before the next one: one server runs at a time
            rounds.append(results)
        report(args, build, rounds[-1], chosen)
        if args.rounds > 1:
            report_rounds(rounds, chosen)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
