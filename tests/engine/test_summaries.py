"""Image summaries: one event file per image revision, written as runs change."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.summaries import ImageSummaries
from jupyter_guildimg.engine.tfevent import EventReader
from jupyter_guildimg.guild.project import write_run

from helpers import age, file_size_limit, jpeg, png, run_logdir, summaries, tags, tree_digest


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
        files={"text.png": b"not an image", "good.png": png()},
    )
    monitor = RunsMonitor(logdir, home.list_runs)
    reports = [monitor.run_pass() for _ in range(3)]

    problems = [(p.path, p.message) for r in reports for p in r.problems]
    assert [path for path, _ in problems] == ["text.png"]
    assert "not an image" in problems[0][1]
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


# --- one run's summaries, without the monitor -----------------------------------------


class OneRun:
    """A run directory, its ImageSummaries and the problems they reported."""

    def __init__(self, root: Path, **options: Any) -> None:
        self.dir = root / "run"
        self.dir.mkdir()
        self.images_dir = root / "log" / ".images"
        self.options = options
        self.summaries = ImageSummaries(str(self.dir), str(self.images_dir), **options)
        self.problems: list[tuple[str, str]] = []

    def write(self, rel: str, data: bytes) -> Path:
        path = self.dir / rel
        path.write_bytes(data)
        self.summaries.add([rel])
        return path

    def update(self) -> list[str]:
        return self.summaries.update(lambda path, message: self.problems.append((path, message)))

    def restart(self) -> ImageSummaries:
        """A new ImageSummaries on the same directories, knowing the same images."""
        self.summaries = ImageSummaries(str(self.dir), str(self.images_dir), **self.options)
        self.summaries.add(p.name for p in self.dir.iterdir())
        return self.summaries

    def files(self) -> list[str]:
        return sorted(os.listdir(self.images_dir)) if self.images_dir.is_dir() else []

    def stored(self) -> list[tuple[str, bytes]]:
        return [
            (e.summary.value[0].tag, e.summary.value[0].image.encoded_image_string)
            for e in EventReader(self.images_dir)
        ]


def noisy_png(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    data = random.Random(seed).randbytes(3 * size[0] * size[1])
    out = io.BytesIO()
    Image.frombytes("RGB", size, data).save(out, "PNG")
    return out.getvalue()


def counters(summaries: ImageSummaries, path: str) -> list[int]:
    return [r.counter for r in summaries.history()[path]]


def test_an_image_replaced_by_a_fifo_is_reported_once_and_never_blocks(tmp_path):
    run = OneRun(tmp_path)
    path = run.write("x.png", png())
    assert run.update() == ["x.png"]
    path.unlink()
    os.mkfifo(path)  # nobody writes to it: a plain open() for reading waits forever

    passes: list[list[str]] = []
    thread = threading.Thread(target=lambda: passes.extend([run.update(), run.update()]))
    thread.daemon = True
    thread.start()
    try:
        thread.join(timeout=60)  # a guard against hanging, not a timing
        assert not thread.is_alive(), "a pass blocked on the FIFO"
    finally:
        if thread.is_alive():  # let the stuck thread go: open the FIFO's other end
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    assert passes == [[], []]
    assert run.problems == [("x.png", "not a regular file; skipped until it changes")]
    assert counters(run.summaries, "x.png") == [0]

    path.unlink()
    path.write_bytes(png(colour="blue"))
    assert run.update() == ["x.png"]
    assert counters(run.summaries, "x.png") == [0, 1]


def bytes_read() -> int | None:
    """Bytes this process has read with read() so far (Linux), else None."""
    try:
        with open("/proc/self/io") as f:
            fields = dict(line.split(": ") for line in f.read().splitlines())
    except OSError:
        return None
    return int(fields["rchar"])


def test_a_file_over_the_size_limit_is_refused_without_being_read(tmp_path):
    run = OneRun(tmp_path)
    limit = run.summaries.max_image_bytes
    assert limit is not None
    size = 300 * 2**20
    for name, head in (("huge.png", png()), ("log.png", b"epoch 1: loss 0.25\n")):
        with open(run.write(name, head), "r+b") as f:
            f.truncate(size)  # sparse: costs no disk
    assert size > limit

    before = bytes_read()
    assert run.update() == [] and run.update() == []
    after = bytes_read()

    assert run.problems == [
        (
            "huge.png",
            f"not summarized: too large ({size} bytes; the limit is {limit});"
            " skipped until it changes",
        ),
        ("log.png", "not summarized: not an image (unknown file signature)"),
    ]
    assert run.files() == []
    if before is not None and after is not None:
        assert after - before < 2**20  # the first bytes only, never the 300 MB

    os.truncate(run.dir / "huge.png", size + 1)  # still growing: said once is enough
    assert run.update() == []
    assert len(run.problems) == 2


def test_a_failed_write_is_reported_once_and_retried_next_pass(tmp_path):
    run = OneRun(tmp_path)
    run.write("small.png", png())
    assert run.update() == ["small.png"]
    image = noisy_png()
    assert len(image) > 2 * 4096
    run.write("x.png", image)

    with file_size_limit(4096):
        failed = [run.update(), run.update()]
    assert failed == [[], []]
    message = f"cannot write summary to {run.images_dir}: File too large; retried next pass"
    assert run.problems == [("x.png", message)]
    assert len(run.files()) == 1  # small.png's only: no temporary file left

    assert run.update() == ["x.png"]
    assert run.stored() == [("small.png", png()), ("x.png", image)]
    assert counters(run.summaries, "x.png") == [1]

    run.write("x.png", noisy_png(seed=1))  # a new streak of failures is reported again
    with file_size_limit(4096):
        assert run.update() == []
    assert run.problems == [("x.png", message)] * 2
    assert run.update() == ["x.png"]


def test_revisions_beyond_the_cap_are_removed_oldest_first(tmp_path):
    run = OneRun(tmp_path, max_revisions=3)
    run.write("a.png", png())
    for width in range(8, 13):
        run.write("x.png", png((width, 8)))
        assert "x.png" in run.update()

    x_files = [n for n in run.files() if n.endswith(hashlib.md5(b"x.png").hexdigest())]
    assert len(x_files) == 3 and len(run.files()) == 4  # a.png's revision stays
    assert counters(run.summaries, "x.png") == [3, 4, 5]
    assert [r.width for r in run.summaries.history()["x.png"]] == [10, 11, 12]
    assert run.summaries.dropped() == {"x.png": 2}
    assert [tag for tag, _ in run.stored()] == ["a.png", "x.png", "x.png", "x.png"]

    restarted = run.restart()
    assert run.update() == []
    assert counters(restarted, "x.png") == [3, 4, 5]
    assert restarted.dropped() == {}  # what an earlier monitor removed is not knowable
    run.write("x.png", png((13, 8)))
    assert run.update() == ["x.png"]
    assert counters(restarted, "x.png") == [4, 5, 6]
    assert restarted.dropped() == {"x.png": 1}
    assert run.problems == []


def test_an_empty_file_waits_silently_until_it_has_content(tmp_path):
    run = OneRun(tmp_path, settle_seconds=0)
    run.write("x.png", png())
    assert run.update() == ["x.png"]
    age(str(run.write("new.png", b"")), 60)  # empty long past the settle time
    run.write("x.png", b"")  # an image being rewritten: truncated first
    assert run.update() == [] and run.update() == []

    run.write("x.png", png(colour="blue"))
    run.write("new.png", png(colour="green"))
    assert run.update() == ["new.png", "x.png"]
    assert counters(run.summaries, "x.png") == [0, 2]
    assert run.problems == []


def events(images_dir: Path) -> list[tuple[str, int, float]]:
    """(tag, step, wall_time) of every image event, in file order."""
    return [(e.summary.value[0].tag, e.step, e.wall_time) for e in EventReader(images_dir)]


def test_revision_steps_put_the_counter_and_the_images_time_in_each_event(tmp_path):
    run = OneRun(tmp_path, revision_steps=True)
    written = []
    for rel, seconds_ago, colour in (("a.png", 300, "red"), ("x.png", 200, "green")):
        age(str(run.write(rel, png(colour=colour))), seconds_ago)
        written.append(rel)
    assert run.update() == written
    x = run.write("x.png", png((8, 8), colour="blue"))
    age(str(x), 100)
    assert run.update() == ["x.png"]

    times = {rel: os.stat(run.dir / rel).st_mtime_ns for rel in ("a.png", "x.png")}
    first_x = run.summaries.history()["x.png"][0].mtime_ns
    assert events(run.images_dir) == [
        ("a.png", 0, times["a.png"] / 1e9),
        ("x.png", 1, first_x / 1e9),
        ("x.png", 2, times["x.png"] / 1e9),
    ]
    assert first_x != times["x.png"]
    assert counters(run.summaries, "x.png") == [1, 2]  # the steps are the REST revisions


def test_by_default_every_event_keeps_step_and_wall_time_0_as_guild_writes_them(tmp_path):
    run = OneRun(tmp_path)
    age(str(run.write("x.png", png())), 200)
    assert run.update() == ["x.png"]
    age(str(run.write("x.png", png((8, 8)))), 100)
    assert run.update() == ["x.png"]

    assert events(run.images_dir) == [("x.png", 0, 0.0), ("x.png", 0, 0.0)]
