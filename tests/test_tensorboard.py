"""The runs monitor against real Guild-format run directories."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.plugins.hparams import api_pb2, metadata

from jupyter_guildimg.project import write_run
from jupyter_guildimg.runs import GuildHome, RunsDir
from jupyter_guildimg.tensorboard import END_FILE, HPARAMS_FILE, RunsMonitor
from jupyter_guildimg.tfevent import EventReader, read_events


def png(size: tuple[int, int] = (16, 16), colour: str = "red", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def jpeg(size: tuple[int, int] = (16, 16), colour: str = "blue") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def home(guild_home: Path) -> GuildHome:
    return GuildHome(guild_home)


@pytest.fixture
def logdir(tmp_path: Path) -> str:
    return str(tmp_path / "logdir")


def run_logdir(logdir: str, run_dir: str) -> str:
    """The one log dir whose name starts with the run's short id."""
    short_id = os.path.basename(run_dir)[:8]
    (name,) = [n for n in os.listdir(logdir) if n.startswith(short_id)]
    return os.path.join(logdir, name)


def summaries(logdir: str, run_dir: str) -> list[str]:
    if not os.path.isdir(logdir):
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


# -- mirror ------------------------------------------------------------------


def test_mirror_links_run_files_but_not_sourcecode_or_guild_internals(home, logdir, tmp_path):
    run_dir = write_run(
        home.path,
        op="train",
        files={
            "samples/a.png": png(),
            "notes.txt": b"hi",
            ".guild/events.out.tfevents.1.host": b"",
        },
        sourcecode={"train.py": b"print()"},
    )
    # Guild 0.9 copies source code to the run root and lists it in the manifest.
    Path(run_dir, "helper.py").write_text("x = 1")
    with open(os.path.join(run_dir, ".guild", "manifest"), "a") as f:
        f.write("s helper.py 0123 helper.py\n")
    outside = tmp_path / "dataset"
    outside.mkdir()
    (outside / "big.png").write_bytes(png())
    os.symlink(outside, os.path.join(run_dir, "data"))  # symlinked directory: an input

    RunsMonitor(logdir, home.list_runs).run_once()

    mirror = run_logdir(logdir, run_dir)
    linked = sorted(
        os.path.relpath(os.path.join(d, n), mirror)
        for d, _, names in os.walk(mirror)
        for n in names
        if os.path.islink(os.path.join(d, n))
    )
    assert linked == [".guild/events.out.tfevents.1.host", "notes.txt", "samples/a.png"]
    assert os.readlink(os.path.join(mirror, "notes.txt")) == os.path.join(run_dir, "notes.txt")
    assert tags(logdir, run_dir) == ["samples/a.png"]


def test_deleted_files_dirs_and_runs_leave_the_mirror(home, logdir):
    keep = write_run(home.path, op="a", files={"x.png": png(), "sub/y.png": png(), "z.txt": b""})
    gone = write_run(home.path, op="b", files={"x.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    gone_log = run_logdir(logdir, gone)

    os.remove(os.path.join(keep, "z.txt"))
    shutil.rmtree(os.path.join(keep, "sub"))
    shutil.rmtree(gone)
    report = monitor.run_pass()

    mirror = run_logdir(logdir, keep)
    assert not os.path.lexists(os.path.join(mirror, "z.txt"))
    assert not os.path.lexists(os.path.join(mirror, "sub"))
    assert os.path.islink(os.path.join(mirror, "x.png"))
    assert not os.path.exists(gone_log)
    assert report.runs_removed == [os.path.basename(gone_log)]


def test_a_file_the_user_put_in_the_log_dir_is_never_deleted(home, logdir):
    os.makedirs(os.path.join(logdir, "my notes"))
    Path(logdir, "my notes", "keep.txt").write_text("precious")
    Path(logdir, "README").write_text("mine")
    write_run(home.path, op="a", files={"x.png": png()})

    RunsMonitor(logdir, home.list_runs).run_once()

    assert Path(logdir, "my notes", "keep.txt").read_text() == "precious"
    assert Path(logdir, "README").read_text() == "mine"


# -- image summaries ---------------------------------------------------------


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


def test_symlinked_images_are_mirrored_but_not_summarized(home, logdir, tmp_path):
    source = tmp_path / "input.png"
    source.write_bytes(png())
    run_dir = write_run(home.path, op="a", files={"out.png": png()})
    os.symlink(source, os.path.join(run_dir, "input.png"))

    RunsMonitor(logdir, home.list_runs).run_once()

    assert os.path.islink(os.path.join(run_logdir(logdir, run_dir), "input.png"))
    assert tags(logdir, run_dir) == ["out.png"]


def test_images_can_be_turned_off(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    RunsMonitor(logdir, home.list_runs, log_images=False).run_once()
    assert summaries(logdir, run_dir) == []
    assert os.path.islink(os.path.join(run_logdir(logdir, run_dir), "a.png"))


# -- the guarantee: run directories are read-only to the monitor --------------


def test_many_passes_leave_the_runs_tree_unchanged(home, logdir, tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "in.png").write_bytes(png())
    for i in range(3):
        run_dir = write_run(
            home.path,
            op="train",
            flags={"i": i, "on": True},
            label=f"run {i}",
            files={
                "a.png": png(),
                "deep/er/b.jpg": jpeg(),
                "broken.png": b"junk",
                "half.png": png()[:30],
                ".hidden.gif": b"GIF89a",
                ".guild/events.out.tfevents.1.h": b"",
            },
            sourcecode={"train.py": b"pass"},
        )
        os.symlink(dataset, os.path.join(run_dir, "data"))
        os.symlink(dataset / "in.png", os.path.join(run_dir, "in.png"))
    runs_tree = os.path.join(home.path, "runs")
    before = tree_digest(runs_tree)

    monitor = RunsMonitor(logdir, home.list_runs)
    for _ in range(5):
        monitor.run_once()
    RunsMonitor(logdir, home.list_runs, run_name_cb=lambda r: f"renamed {r.id}").run_once()
    RunsMonitor(logdir, home.list_runs).run_once()

    assert tree_digest(runs_tree) == before


# -- names -------------------------------------------------------------------


def test_run_names_are_safe_and_unique(home, logdir):
    labels = ["a/b\\c", "dots…", "ünïcødé ✓", "x" * 600, "tab\tnew\nline", ""]
    for label in labels:
        write_run(home.path, op="train", label=label, files={"a.png": png()})
    write_run(home.path, op="train", files={"a.png": png()})

    def same_name(run):
        return "same"

    RunsMonitor(logdir, home.list_runs).run_once()
    names = os.listdir(logdir)
    assert len(names) == 7
    for name in names:
        assert "/" not in name and "\\" not in name and "…" not in name
        assert "\n" not in name and "\t" not in name
        assert len(name.encode()) <= 200
        assert os.path.isdir(os.path.join(logdir, name, ".images"))

    other = str(Path(logdir).parent / "other")
    RunsMonitor(other, home.list_runs, run_name_cb=same_name).run_once()
    assert len(set(os.listdir(other))) == 7


def test_a_relabelled_run_keeps_its_history_under_the_new_name(home, logdir):
    run_dir = write_run(home.path, op="a", label="before", files={"a.png": png()})
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    old = run_logdir(logdir, run_dir)
    Path(run_dir, ".guild", "attrs", "label").write_text("after\n")

    report = monitor.run_pass()

    new = run_logdir(logdir, run_dir)
    assert old.endswith("before") and new.endswith("after")
    assert report.written == []
    assert len(summaries(logdir, run_dir)) == 1


# -- hparams -----------------------------------------------------------------


def test_hparams_session_and_time_from_flags(home, logdir):
    flags = {"lr": 0.1, "epochs": 3, "fast": True, "name": "x", "opts": {"a": 1}, "none": None}
    run_dir = write_run(home.path, op="train", flags=flags, started=1000.0, stopped=1042.5)

    RunsMonitor(logdir, home.list_runs).run_once()

    mirror = run_logdir(logdir, run_dir)
    start = [e for e in read_events(os.path.join(mirror, HPARAMS_FILE)) if e.HasField("summary")]
    content = start[0].summary.value[0].metadata.plugin_data.content
    info = metadata.parse_session_start_info_plugin_data(content)
    assert info.group_name == f"{os.path.basename(run_dir)[:8]} train"
    assert info.hparams["lr"].number_value == 0.1
    assert info.hparams["fast"].bool_value is True
    assert info.hparams["name"].string_value == "x"
    assert info.hparams["opts"].string_value == '{"a":1}'
    assert info.hparams["none"].string_value == "null"

    end = [e for e in read_events(os.path.join(mirror, END_FILE)) if e.HasField("summary")]
    end_info = metadata.parse_session_end_info_plugin_data(
        end[0].summary.value[0].metadata.plugin_data.content
    )
    assert end_info.status == api_pb2.STATUS_SUCCESS
    assert end[1].summary.value[0].tag == "time"
    assert end[1].summary.value[0].simple_value == pytest.approx(42.5)


def test_the_end_file_waits_for_the_run_to_finish(home, logdir):
    run_dir = write_run(home.path, op="train", exit_status=None)
    Path(run_dir, ".guild", "LOCK").write_text(str(os.getpid()))
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    assert not os.path.exists(os.path.join(run_logdir(logdir, run_dir), END_FILE))

    os.remove(os.path.join(run_dir, ".guild", "LOCK"))
    Path(run_dir, ".guild", "attrs", "exit_status").write_text("1\n")
    monitor.run_once()
    assert os.path.exists(os.path.join(run_logdir(logdir, run_dir), END_FILE))


# -- the thread and bad configuration ----------------------------------------


def test_interval_below_half_a_second_is_refused(logdir):
    with pytest.raises(ValueError, match=r"at least 0\.5"):
        RunsMonitor(logdir, list, interval=0.1)
    assert RunsMonitor(logdir, list, interval=0.5).interval == 0.5


def test_the_thread_survives_a_failing_pass(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    calls = []
    lock = threading.Lock()

    def flaky_list_runs():
        with lock:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("source unreachable")
        return home.list_runs()

    monitor = RunsMonitor(logdir, flaky_list_runs, interval=0.5)
    monitor.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not summaries(logdir, run_dir):
            time.sleep(0.1)
    finally:
        monitor.stop()
    assert summaries(logdir, run_dir)
    assert any("source unreachable" in p.message for p in monitor.problems)
    assert not monitor.running


def test_a_run_overlapping_the_log_dir_is_refused(home, tmp_path):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    inside = os.path.join(run_dir, "tb")
    before = tree_digest(run_dir)

    monitor = RunsMonitor(inside, home.list_runs)
    reports = [monitor.run_pass() for _ in range(2)]

    assert [r.runs for r in reports] == [0, 0]
    assert [p.message for r in reports for p in r.problems] == [
        f"the log dir {inside} is inside this run; nothing is written"
    ]
    assert not os.path.exists(inside)
    assert tree_digest(run_dir) == before


def test_runs_inside_the_log_dir_are_refused(home, tmp_path):
    write_run(home.path, op="a", files={"a.png": png()})
    report = RunsMonitor(os.path.dirname(home.path), home.list_runs).run_pass()
    assert report.runs == 0
    assert "lies inside the log dir" in report.problems[0].message


def test_plain_runs_directories_are_monitored(tmp_path, logdir):
    runs = tmp_path / "lightning_logs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())

    RunsMonitor(logdir, RunsDir(runs).list_runs).run_once()

    assert os.listdir(logdir) == ["version_0"]
    assert os.listdir(os.path.join(logdir, "version_0", ".images"))
