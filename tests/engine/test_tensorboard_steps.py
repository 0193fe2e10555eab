"""Every revision of an image on TensorBoard's step slider, with its real time: a real
monitor with ``revision_steps=True`` over a real log dir, a real TensorBoard, and its
images plugin over HTTP."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.engine.tbprocess import TensorBoardProcess
from jupyter_guildimg.guild.project import write_run

from helpers import age, png, run_logdir, wait_for

TAG = "plots/x.png"


@pytest.mark.tensorboard
def test_tensorboard_serves_each_revision_at_its_step_with_the_images_time(
    home: GuildHome, logdir: str, tmp_path: Path
) -> None:
    run_dir = write_run(home.path, op="train")
    image = Path(run_dir, TAG)
    image.parent.mkdir()
    monitor = RunsMonitor(logdir, home.list_runs, log_hparams=False, revision_steps=True)
    revisions: list[tuple[bytes, int]] = []  # (bytes, mtime_ns) of each revision written
    for seconds_ago, size, colour in ((300, 16, "red"), (200, 24, "green"), (100, 32, "blue")):
        data = png((size, size), colour)
        image.write_bytes(data)
        age(str(image), seconds_ago)  # past the racy window, and a new mtime every time
        assert [path for _, path in monitor.run_pass().written] == [TAG]
        revisions.append((data, image.stat().st_mtime_ns))
    monitor.close()
    run = os.path.basename(run_logdir(logdir, run_dir)) + "/.images"  # TensorBoard's run

    tb = TensorBoardProcess(logdir, runtime_dir=str(tmp_path / "runtime"))

    async def scenario() -> None:
        try:
            assert (await tb.start()).outcome == "started"
            assert tb.url is not None
            await asyncio.to_thread(check_plugin, tb.url, run, revisions)
        finally:
            await tb.stop()

    try:
        asyncio.run(scenario())
    finally:
        tb.stop_now()  # a no-op once stopped; ends TensorBoard if the scenario could not


def check_plugin(url: str, run: str, revisions: list[tuple[bytes, int]]) -> None:
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:

        def entries() -> list[dict[str, Any]] | None:
            params = {"run": run, "tag": TAG, "sample": 0}
            response = client.get("data/plugin/images/images", params=params)
            found = response.json() if response.status_code == 200 else []
            return found if len(found) == len(revisions) else None

        found = wait_for(entries, 60, f"TensorBoard to list {len(revisions)} revisions")
        assert [entry["step"] for entry in found] == [0, 1, 2]
        for entry, (_data, mtime_ns) in zip(found, revisions, strict=True):
            assert entry["wall_time"] == pytest.approx(mtime_ns / 1e9, abs=1e-3)
        served = [
            client.get(f"data/plugin/images/individualImage?{entry['query']}").content
            for entry in found
        ]
        assert served[0] == revisions[0][0]  # the first revision, at step 0
        assert served == [data for data, _ in revisions]
