"""How much memory does a thumbnail of a large image take?

Writes a run with three 9000×9000 images (an RGB PNG of about 250 KB, a grey PNG
and an RGB JPEG), captures them with a real monitor, then, each in a fresh child
process over that log dir, asks for thumbnails from worker threads (as the server's
executor does):

- one: one ``thumb=128``;
- six: six different widths at once (64, 128, 160, 192, 256, 512).

Each is done twice: ``old``, a copy of the catalog's first way of scaling (full
decode, a copy of it, then ``thumbnail``, with no cap and no limit on concurrent
decodes),
and ``new``, :meth:`Catalog.thumbnail` as it is now. The table gives, in MiB, the
child's RSS before, its peak growth during the thumbnails (VmHWM, reset first),
what it kept after, and what it kept after glibc's ``malloc_trim(0)``; ``refused``
counts the thumbnails the new code declined (too large to decode).

    python benchmarks/thumbnails.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from PIL import Image

from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.engine.thumbnails import ThumbnailError
from jupyter_guildimg.guild.project import write_run

SIZE = 9000
IMAGES = {"rgb.png": ("RGB", "PNG"), "grey.png": ("L", "PNG"), "rgb.jpg": ("RGB", "JPEG")}
SCENARIOS = {"one": (128,), "six": (64, 128, 160, 192, 256, 512)}
MIB = 2**20


def old_scale(data: bytes, width: int) -> bytes:
    """The baseline: what the catalog did before thumbnails were bounded."""
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        frame = image.copy()
    frame.thumbnail((width, width))
    out = io.BytesIO()
    if frame.mode in ("RGB", "L") and data.startswith(b"\xff\xd8"):
        frame.save(out, "JPEG", quality=85)
    else:
        if frame.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
            frame = frame.convert("RGBA")
        frame.save(out, "PNG")
    return out.getvalue()


def _status(field: str) -> int:
    """A /proc/self/status figure (kB) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(approach: str, path: str, widths: list[int], home: str, logdir: str) -> dict[str, Any]:
    monitor = RunsMonitor(logdir, GuildHome(home).list_runs)
    monitor.run_pass()
    catalog = Catalog(monitor)
    (view,) = monitor.views
    key = view.run.id
    refused = 0

    def thumb(width: int) -> int:
        if approach == "old":
            return len(old_scale(catalog.image(key, path).data, width))
        try:
            return len(catalog.thumbnail(key, path, width).data)
        except ThumbnailError:
            return -1

    with concurrent.futures.ThreadPoolExecutor(len(widths)) as pool:
        pool.submit(int).result()  # the threads exist before the baseline
        before = _status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        refused = sum(1 for n in pool.map(thumb, widths) if n < 0)
        peak, after = _status("VmHWM"), _status("VmRSS")
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        trimmed = _status("VmRSS")
    monitor.close()
    return {
        "before": before / MIB,
        "peak": (peak - before) / MIB,
        "kept": (after - before) / MIB,
        "trimmed": (trimmed - before) / MIB,
        "refused": refused,
    }


def prepare(root: str) -> tuple[str, str]:
    home, logdir = os.path.join(root, "home"), os.path.join(root, "logdir")
    files = {}
    for name, (mode, fmt) in IMAGES.items():
        image = Image.new(mode, (SIZE, SIZE), "red" if mode == "RGB" else 128)
        out = io.BytesIO()
        image.save(out, fmt)
        del image
        files[name] = out.getvalue()
    write_run(home, op="big", files=files)
    monitor = RunsMonitor(logdir, GuildHome(home).list_runs)
    report = monitor.run_pass()
    monitor.close()
    if len(report.written) != len(IMAGES):
        raise SystemExit(f"the monitor did not capture every image: {report.to_json()}")
    for name, data in files.items():
        print(f"{name}: {SIZE}×{SIZE}, {len(data) / 1024:.0f} KB")
    return home, logdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        approach, path, widths, home, logdir = args.child
        result = child(approach, path, [int(w) for w in widths.split(",")], home, logdir)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="guildimg-thumbs-") as root:
        home, logdir = prepare(root)
        print()
        print(
            f"{'image':<9} {'thumbs':<6} {'code':<4} {'RSS':>6} {'peak +':>7} {'kept +':>7}"
            f" {'trimmed +':>9} {'refused':>7} {'seconds':>7}"
        )
        for path in IMAGES:
            for scenario, widths in SCENARIOS.items():
                for approach in ("old", "new"):
                    started = time.perf_counter()
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            approach,
                            path,
                            ",".join(map(str, widths)),
                            home,
                            logdir,
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    seconds = time.perf_counter() - started
                    r = json.loads(out.splitlines()[-1])
                    print(
                        f"{path:<9} {scenario:<6} {approach:<4} {r['before']:6.0f}"
                        f" {r['peak']:7.0f} {r['kept']:7.0f} {r['trimmed']:9.0f}"
                        f" {r['refused']:7d} {seconds:7.1f}"
                    )


if __name__ == "__main__":
    main()
