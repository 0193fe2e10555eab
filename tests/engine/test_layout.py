"""Nothing a user put in the log dir is ever deleted by the monitor, and one
monitor at a time owns a log dir."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_guildimg.engine import layout
from jupyter_guildimg.engine.layout import (
    END_FILE,
    HPARAMS_FILE,
    IMAGES_DIR,
    TEMP_PREFIX,
    LogDirLock,
    LogDirLockedError,
    is_own_file,
    logdir_in_use,
    parse_summary_name,
    path_digest,
    safe_remove,
    summary_file_name,
)
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.guild.project import write_run

from helpers import png


def test_a_file_the_user_put_in_the_log_dir_is_never_deleted(home, logdir):
    os.makedirs(os.path.join(logdir, "my notes"))
    Path(logdir, "my notes", "keep.txt").write_text("precious")
    Path(logdir, "README").write_text("mine")
    write_run(home.path, op="a", files={"x.png": png()})

    RunsMonitor(logdir, home.list_runs).run_once()

    assert Path(logdir, "my notes", "keep.txt").read_text() == "precious"
    assert Path(logdir, "README").read_text() == "mine"


OWN_FILES = [
    "events.out.tfevents.0000000003.image." + "0123456789abcdef" * 2,
    "events.out.tfevents.0000000000.hparams",
    "events.out.tfevents.9999999999.time",
    TEMP_PREFIX + "1a2b3c",
]
NOT_OWN_FILES = [
    "events.out.tfevents.1795476969",  # a run's own event file, copied in by a user
    "events.out.tfevents.0000000003.image.0123",  # digest too short
    "events.out.tfevents.0000000000.hparams.bak",
    TEMP_PREFIX + "not-hex",
    "notes.txt",
]


def test_own_file_names():
    assert [n for n in OWN_FILES + NOT_OWN_FILES if is_own_file(n)] == OWN_FILES


def test_the_own_file_test_is_built_from_the_names_the_monitor_writes():
    digest = path_digest("plots/loss.png")
    assert len(digest) == 32
    assert is_own_file(summary_file_name(7, digest))
    assert parse_summary_name(summary_file_name(7, digest)) == (7, digest)
    assert parse_summary_name(HPARAMS_FILE) is None
    assert is_own_file(HPARAMS_FILE) and is_own_file(END_FILE)
    assert is_own_file(TEMP_PREFIX + "0f" * 16)
    # The names other modules write come from here: one place to rename them.
    from jupyter_guildimg.engine import mirror, runlog, summaries, tfevent

    assert mirror.IMAGES_DIR is IMAGES_DIR and tfevent.TEMP_PREFIX is TEMP_PREFIX
    assert (runlog.HPARAMS_FILE, runlog.END_FILE) == (HPARAMS_FILE, END_FILE)
    assert summaries.summary_file_name is layout.summary_file_name
    assert summaries.path_digest is layout.path_digest


def test_every_file_a_pass_writes_is_one_the_monitor_calls_its_own(home, logdir):
    write_run(home.path, op="a", files={"a.png": png(), "deep/b.png": png(), "notes.txt": b"x"})
    RunsMonitor(logdir, home.list_runs).run_once()

    written = [
        name
        for directory, _dirs, files in os.walk(logdir)
        for name in files
        if not os.path.islink(os.path.join(directory, name))
    ]
    # Two summaries, the hparams start and (the run is finished) end files.
    assert len(written) == 4
    assert all(is_own_file(name) for name in written), written
    (run_dir,) = os.listdir(logdir)
    assert len(os.listdir(os.path.join(logdir, run_dir, IMAGES_DIR))) == 2


def test_safe_remove_removes_links_own_files_and_empty_dirs_and_keeps_the_rest(tmp_path):
    target = tmp_path / "run"
    (target / "data").mkdir(parents=True)
    (target / "data" / "in.png").write_bytes(b"input")
    (target / "out.png").write_bytes(b"output")
    root = tmp_path / "logdir" / "a run"
    (root / ".images").mkdir(parents=True)
    (root / "empty" / "emptier").mkdir(parents=True)
    (root / "mixed").mkdir()
    os.symlink(target / "out.png", root / "out.png")
    os.symlink(target / "data", root / "data")  # a linked directory: never followed
    os.symlink(tmp_path / "gone", root / "dangling")
    for name in OWN_FILES:
        (root / ".images" / name).write_bytes(b"")
    for name in NOT_OWN_FILES:
        (root / "mixed" / name).write_text("mine")
    (root / "mixed" / OWN_FILES[0]).write_bytes(b"")
    os.symlink(target / "out.png", root / "mixed" / "link.png")

    kept = safe_remove(str(root))

    assert sorted(kept) == sorted(str(root / "mixed" / n) for n in NOT_OWN_FILES)
    left = sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    )
    assert left == ["mixed", *sorted(os.path.join("mixed", n) for n in NOT_OWN_FILES)]
    assert all(Path(p).read_text() == "mine" for p in kept)
    # What the links pointed to is untouched.
    assert (target / "out.png").read_bytes() == b"output"
    assert (target / "data" / "in.png").read_bytes() == b"input"


def test_safe_remove_of_one_path(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x")
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    own = tmp_path / OWN_FILES[1]
    own.write_bytes(b"")
    link = tmp_path / "link"
    os.symlink(tmp_path / "dir", link)
    empty = tmp_path / "empty"
    empty.mkdir()

    assert safe_remove(str(link)) == []
    assert safe_remove(str(own)) == []
    assert safe_remove(str(empty)) == []
    assert safe_remove(str(mine)) == [str(mine)]

    assert sorted(os.listdir(tmp_path)) == ["dir", "mine.txt"]
    assert (tmp_path / "dir" / "x").read_text() == "x"
    assert mine.read_text() == "mine"


# -- the log dir's lock ------------------------------------------------------


def test_a_second_lock_in_the_same_process_conflicts(tmp_path):
    first, second = LogDirLock(str(tmp_path)), LogDirLock(str(tmp_path))
    first.acquire()
    first.acquire()  # idempotent

    with pytest.raises(LogDirLockedError) as refused:
        second.acquire()

    assert refused.value.pid == os.getpid()
    assert first.held and not second.held
    first.release()
    first.release()
    second.acquire()
    assert second.held
    second.release()


def test_the_lock_writes_nothing_in_the_log_dir(tmp_path):
    lock = LogDirLock(str(tmp_path))
    lock.acquire()
    assert os.listdir(tmp_path) == []
    lock.release()


def test_a_dropped_lock_lets_go(tmp_path):
    lock = LogDirLock(str(tmp_path))
    lock.acquire()
    del lock
    gc.collect()
    assert not logdir_in_use(str(tmp_path))


PROBE = """
import sys
from jupyter_guildimg.engine.layout import logdir_in_use
print(logdir_in_use(sys.argv[1]))
"""


def test_logdir_in_use_sees_a_holder_in_another_process_and_leaves_it_alone(tmp_path):
    lock = LogDirLock(str(tmp_path))
    assert not logdir_in_use(str(tmp_path))
    lock.acquire()

    probe = [sys.executable, "-c", PROBE, str(tmp_path)]
    seen = [subprocess.run(probe, capture_output=True, text=True, check=True) for _ in range(2)]

    assert [r.stdout for r in seen] == ["True\n", "True\n"]
    assert logdir_in_use(str(tmp_path))
    with pytest.raises(LogDirLockedError):
        LogDirLock(str(tmp_path)).acquire()  # the probes took nothing away
    lock.release()
    assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout == "False\n"


def test_logdir_in_use_of_a_missing_dir_is_false(tmp_path):
    assert not logdir_in_use(str(tmp_path / "missing"))


def test_the_locked_error_without_a_known_holder_still_reads_well():
    error = LogDirLockedError("/tb", None)
    assert str(error).startswith("log dir '/tb' is in use by another monitor (held by another")
    assert error.pid is None and error.logdir == "/tb"
