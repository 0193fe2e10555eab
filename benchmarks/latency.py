"""How long from an image file being written in a run to its bytes being served?

Starts a real Jupyter server with the extension over a Guild home of --runs runs
(and TensorBoard started with it), then --samples times writes a new image into
a run and measures, polling every 20 ms:

- api: until ``GET guildimg/api/runs/<id>/images/<path>`` returns those bytes;
- tensorboard: until TensorBoard, through the server's proxy, returns those bytes
  from ``individualImage``.

Prints median and worst of each, next to the targets (API ≤ 1.5 s, TensorBoard ≤
3 s at 200 runs). The monitor's interval is the server default (1 s).

    python benchmarks/latency.py
    python benchmarks/latency.py --runs 200 --samples 20
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
from PIL import Image

from jupyter_guildimg.guild.project import write_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (i * 37 % 256, i * 91 % 256, 200)).save(out, "PNG")
    return out.getvalue()


def wait(condition, seconds: float, what: str) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        if condition():
            return time.perf_counter() - start
        time.sleep(0.02)
    raise SystemExit(f"timed out after {seconds} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="guildimg-latency-")
    home = os.path.join(root, "guild-home")
    print(f"making {args.runs} runs ...", file=sys.stderr)
    run_dirs = [
        write_run(home, op="train", files={"a.png": image(i), "samples/b.png": image(i + 1)})
        for i in range(args.runs)
    ]
    port, token = free_port(), secrets.token_hex(16)
    config = os.path.join(root, "config.py")
    with open(config, "w") as f:
        f.write(
            "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
            f"c.GuildImgApp.sources = ['guild:{home}']\n"
            "c.GuildImgApp.tensorboard_autostart = True\n"
        )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--config={config}",
            f"--ServerApp.root_dir={root}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"token {token}"}, timeout=10
    )
    try:

        def api_ok(path: str) -> bool:
            try:
                return client.get(path).status_code == 200
            except httpx.TransportError:
                return False

        print("waiting for the server and TensorBoard ...", file=sys.stderr)
        wait(lambda: api_ok("/guildimg/api/status"), 120, "the server")
        wait(lambda: api_ok("/guildimg/tensorboard/data/runs"), 180, "TensorBoard")
        api_times, tb_times = [], []
        for i in range(args.samples):
            run_dir = run_dirs[(i * 7) % len(run_dirs)]
            name, data = f"new-{i}.png", image(1000 + i)
            run_id = os.path.basename(run_dir)
            with open(os.path.join(run_dir, name), "wb") as f:
                f.write(data)
            written = time.perf_counter()

            def api_served(run_id: str = run_id, name: str = name, data: bytes = data) -> bool:
                response = client.get(f"/guildimg/api/runs/{run_id}/images/{name}")
                return response.status_code == 200 and response.content == data

            def tb_served(run_id: str = run_id, name: str = name, data: bytes = data) -> bool:
                tags = client.get("/guildimg/tensorboard/data/plugin/images/tags").json()
                runs = [r for r in tags if r.startswith(run_id[:8]) and name in tags[r]]
                if not runs:
                    return False
                params = {"run": runs[0], "tag": name, "sample": 0}
                images = client.get(
                    "/guildimg/tensorboard/data/plugin/images/images", params=params
                )
                if not images.json():
                    return False
                query = images.json()[-1]["query"]
                blob = client.get(
                    f"/guildimg/tensorboard/data/plugin/images/individualImage?{query}"
                )
                return blob.content == data

            wait(lambda: api_served(), 30, "the API")
            api_times.append(time.perf_counter() - written)
            wait(lambda: tb_served(), 60, "TensorBoard")
            tb_times.append(time.perf_counter() - written)
        print(f"{args.runs} runs, {args.samples} images written one at a time")
        print(f"{'':14}{'median':>10}{'worst':>10}{'target':>10}")
        for label, times, target in (("API", api_times, 1.5), ("TensorBoard", tb_times, 3.0)):
            print(f"{label:14}{statistics.median(times):9.2f}s{max(times):9.2f}s{target:9.1f}s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    main()
