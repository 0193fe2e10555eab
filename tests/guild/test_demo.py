"""The demo runs: made with the real project runner, and the live one that gives the
revision slider, live updates and TensorBoard's step slider something to show."""

from __future__ import annotations

import hashlib
import time

from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.demo import LIVE_LABEL, make_demo_runs, start_live_run
from jupyter_guildimg.guild.project import write_run

from helpers import png


def test_demo_runs_are_returned_without_the_homes_other_runs(guild_home):
    write_run(guild_home, op="mine", files={"a.png": png()})

    made = make_demo_runs(str(guild_home), 2, label="mine too")

    assert [run.label for run in made] == ["mine too", "mine too"]
    assert len(GuildHome(guild_home).list_runs()) == 3
    assert made[0].started >= made[1].started  # newest first


def test_a_live_demo_run_writes_a_new_sample_grid_every_epoch(guild_home, tmp_path):
    home = GuildHome(guild_home)
    monitor = RunsMonitor(str(tmp_path / "logdir"), home.list_runs, revision_steps=True)
    catalog = Catalog(monitor)
    live = start_live_run(str(guild_home), epochs=4, epoch_seconds=1.0)
    try:
        assert live.run.status == "running" and live.run.label == LIVE_LABEL
        # Passes while it trains, as the server's monitor makes them.
        deadline = time.monotonic() + 60
        while live.process.poll() is None and time.monotonic() < deadline:
            monitor.run_pass()
            time.sleep(0.3)
        run = live.wait(10)
    finally:
        live.terminate()
    monitor.run_pass()
    try:
        assert run.status == "completed"
        listing = catalog.images(run.id)
        (samples,) = [image for image in listing["images"] if image["path"] == "samples.png"]
        revisions = samples["revisions"]
        assert len(revisions) > 1, revisions
        # Each revision is another picture, not the same bytes again.
        pictures = {
            hashlib.md5(catalog.image(run.id, "samples.png", r["revision"]).data).hexdigest()
            for r in revisions
        }
        assert len(pictures) == len(revisions)
    finally:
        catalog.close()
        monitor.close()
