"""Image summaries: one event file per image revision, written as runs change."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from jupyter_guildimg.project import write_run
from jupyter_guildimg.tensorboard import RunsMonitor
from jupyter_guildimg.tfevent import EventReader

from helpers import age, jpeg, png, run_logdir, summaries, tags, tree_digest


def test_a_changed_image_gets_a_new_summary_and_old_ones_stay(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(colour="red"), "b.jpg": jpeg()})
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    first = summaries(logdir, run_dir)

    Path(run_dir, "a.png").write_bytes(png(colour="green"))
    report = monitor.run_pass()
    unchanged = monitor.run_pass()

    assert [path for _, path in report.written] == ["a.png"]
    assert unchanged.written == []
    after = summaries(logdir, run_dir)
    assert after[:2] == first and len(after) == 3
    digest = hashlib.md5(b"a.png").hexdigest()
    assert after[2] == f"events.out.tfevents.0000000002.image.{digest}"
    events = list(EventReader(os.path.join(run_logdir(logdir, run_dir), ".images")))
    assert events[2].summary.value[0].image.encoded_image_string == png(colour="green")


def test_a_rewrite_within_the_same_clock_tick_is_still_seen(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(colour="red")})
    path = os.path.join(run_dir, "a.png")
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    mtime = os.stat(path).st_mtime_ns
    Path(path).write_bytes(png(colour="blue"))  # same size, different pixels
    os.utime(path, ns=(mtime, mtime))  # as if written in the same tick

    assert [p for _, p in monitor.run_pass().written] == ["a.png"]


def test_restart_reuses_the_log_dir_without_redoing_it(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(), "b.png": png((8, 8))})
    RunsMonitor(logdir, home.list_runs).run_once()
    before = tree_digest(logdir)

    restarted = RunsMonitor(logdir, home.list_runs)
    report = restarted.run_pass()
    assert report.written == []
    assert tree_digest(logdir) == before

    Path(run_dir, "b.png").write_bytes(png((9, 9)))
    assert [p for _, p in restarted.run_pass().written] == ["b.png"]
    assert summaries(logdir, run_dir)[-1].startswith("events.out.tfevents.0000000002.image.")


def test_bad_images_are_reported_once_per_revision_and_the_rest_goes_on(home, logdir):
    run_dir = write_run(
        home.path,
        op="a",
        files={"empty.png": b"", "text.png": b"not an image", "good.png": png()},
    )
    monitor = RunsMonitor(logdir, home.list_runs)
    reports = [monitor.run_pass() for _ in range(3)]

    problems = [(p.path, p.message) for r in reports for p in r.problems]
    assert sorted(path for path, _ in problems) == ["empty.png", "text.png"]
    assert "empty file" in dict(problems)["empty.png"]
    assert tags(logdir, run_dir) == ["good.png"]

    Path(run_dir, "text.png").write_bytes(b"still not an image")
    assert [p.path for p in monitor.run_pass().problems] == ["text.png"]
    Path(run_dir, "text.png").write_bytes(png())
    report = monitor.run_pass()
    assert [p for _, p in report.written] == ["text.png"] and report.problems == []


def test_an_image_still_being_written_waits_until_complete(home, logdir):
    whole = png((64, 64), mode="RGBA", colour="purple")
    run_dir = write_run(home.path, op="a", files={"a.png": whole[: len(whole) // 2]})
    monitor = RunsMonitor(logdir, home.list_runs)

    report = monitor.run_pass()
    assert report.written == [] and report.problems == []

    Path(run_dir, "a.png").write_bytes(whole)
    assert [p for _, p in monitor.run_pass().written] == ["a.png"]
    events = list(EventReader(os.path.join(run_logdir(logdir, run_dir), ".images")))
    assert [e.summary.value[0].image.encoded_image_string for e in events] == [whole]


def test_a_truncated_image_that_stops_changing_is_reported_once(home, logdir):
    whole = jpeg((32, 32))
    run_dir = write_run(home.path, op="a", files={"a.jpg": whole[:-40]})
    age(os.path.join(run_dir, "a.jpg"), 60)
    monitor = RunsMonitor(logdir, home.list_runs)

    problems = [p for _ in range(3) for p in monitor.run_pass().problems]

    assert [p.path for p in problems] == ["a.jpg"]
    assert "ends early" in problems[0].message
    assert summaries(logdir, run_dir) == []


def test_the_image_cap_never_blocks_updates_and_is_reported_once(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png(), "b.png": png(), "c.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs, max_images_per_run=2)
    first = monitor.run_pass()
    assert [p for _, p in first.written] == ["a.png", "b.png"]
    assert len(first.problems) == 1 and "cap of 2" in first.problems[0].message

    Path(run_dir, "b.png").write_bytes(png(colour="white"))
    second = monitor.run_pass()
    assert [p for _, p in second.written] == ["b.png"]
    assert second.problems == []


def test_images_can_be_turned_off(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    RunsMonitor(logdir, home.list_runs, log_images=False).run_once()
    assert summaries(logdir, run_dir) == []
    assert os.path.islink(os.path.join(run_logdir(logdir, run_dir), "a.png"))
