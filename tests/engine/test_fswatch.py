"""The watch helper: real inotify on real directories, with bounded waits for events
(never timing assertions), and the mount table that decides what is polled."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_guildimg.engine.fstype import (
    filesystem_type,
    mount_of,
    parse_mountinfo,
    untrusted_reason,
)
from jupyter_guildimg.engine.fswatch import RunsWatcher

from helpers import python_with_inotify_limits

WAIT = 10.0  # generous: events take milliseconds, a loaded machine more


class Changes:
    """What a watcher reported, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[set[str]] = []
        self._cond = threading.Condition()

    def __call__(self, paths: set[str]) -> None:
        with self._cond:
            self.batches.append(set(paths))
            self._cond.notify_all()

    @property
    def paths(self) -> set[str]:
        with self._cond:
            return set().union(*self.batches)

    def wait(self, path: str | Path, seconds: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: str(path) in set().union(*self.batches), seconds)


def until_reported(changes: Changes, path: Path, touch: Callable[[], None]) -> None:
    """Repeats ``touch`` until ``path`` is reported: a watch starts in its own
    thread, so the first change may come before it is in place."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        touch()
        if changes.wait(path, 0.5):
            return
    raise AssertionError(f"{path} was never reported")


def write(path: Path) -> Callable[[], None]:
    def touch() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(b"x")

    return touch


def make_dir(path: Path) -> Callable[[], None]:
    def touch() -> None:
        if path.exists():
            path.rmdir()
        path.mkdir()

    return touch


def guild_run(runs: Path, name: str) -> Path:
    run = runs / name
    (run / ".guild" / "attrs").mkdir(parents=True)
    (run / ".guild" / "opref").write_text("guildfile:x 1 y z\n")
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "home" / "runs"
    runs.mkdir(parents=True)
    guild_run(runs, "aaa")
    guild_run(runs, "bbb")
    return runs


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def watcher(changes: Changes) -> Iterator[RunsWatcher]:
    watcher = RunsWatcher(changes, debounce_ms=20)
    yield watcher
    watcher.close()


def test_a_file_written_in_an_active_run_is_reported(runs, changes, watcher):
    watcher.watch([str(runs)], [str(runs / "aaa")])
    image = runs / "aaa" / ".guild" / "images" / "step_1.png"
    until_reported(changes, image, write(image))
    assert all(os.path.isabs(p) for p in changes.paths)
    assert watcher.sources() == [{"path": str(runs), "mode": "events", "reason": ""}]
    assert watcher.polled([str(runs)]) == []
    # runs/ (one watch) + aaa/, .guild/, attrs/ and images/ once counted: at least 4
    assert watcher.watches >= 4


def test_a_new_run_is_reported_but_not_the_files_of_a_quiet_run(runs, changes, watcher):
    watcher.watch([str(runs)], [str(runs / "aaa")])
    until_reported(changes, runs / "first", make_dir(runs / "first"))
    quiet = runs / "bbb" / "output" / "deep" / "image.png"
    write(quiet)()
    # Events arrive in order: once the run created after it is reported, an event
    # for the quiet run's file would have been too.
    (runs / "second").mkdir()
    assert changes.wait(runs / "second", WAIT)
    assert not [p for p in changes.paths if p.startswith(str(runs / "bbb") + os.sep)]


def test_a_new_active_set_is_watched(runs, changes, watcher):
    watcher.watch([str(runs)], [str(runs / "aaa")])
    until_reported(changes, runs / "aaa" / "f", write(runs / "aaa" / "f"))
    watcher.watch([str(runs)], [str(runs / "aaa"), str(runs / "bbb")])
    until_reported(changes, runs / "bbb" / "g", write(runs / "bbb" / "g"))
    watcher.watch([str(runs)], [str(runs / "aaa"), str(runs / "bbb")])  # unchanged: cheap


def test_a_new_run_is_watched_from_its_first_files_on(runs, changes, watcher):
    watcher.watch([str(runs)], [])
    until_reported(changes, runs / "first", make_dir(runs / "first"))
    new = runs / "ccc"
    (new / ".guild").mkdir(parents=True)  # as Guild starts a run: no watch() in between
    attrs = new / ".guild" / "attrs" / "started"
    until_reported(changes, attrs, write(attrs))
    assert watcher.polled([str(runs)]) == []


def test_a_run_deleted_and_recreated_is_watched_again(runs, changes, watcher):
    watcher.watch([str(runs)], [str(runs / "aaa")])
    until_reported(changes, runs / "aaa" / "f", write(runs / "aaa" / "f"))
    for entry in sorted((runs / "aaa").rglob("*"), reverse=True):
        entry.rmdir() if entry.is_dir() else entry.unlink()
    (runs / "aaa").rmdir()
    guild_run(runs, "aaa")
    watcher.watch([str(runs)], [str(runs / "aaa")])  # same paths, new inode
    until_reported(changes, runs / "aaa" / "again", write(runs / "aaa" / "again"))


def test_a_plain_runs_folder_is_watched_recursively(tmp_path, changes, watcher):
    logs = tmp_path / "lightning_logs"
    (logs / "version_0" / "images").mkdir(parents=True)
    watcher.watch([str(logs)], [])
    image = logs / "version_0" / "images" / "a.png"
    until_reported(changes, image, write(image))
    assert watcher.polled([str(logs)]) == []


def test_forced_polling_watches_nothing_and_says_why(runs, changes):
    watcher = RunsWatcher(changes, force_polling=True)
    try:
        watcher.watch([str(runs)], [str(runs / "aaa")])
        reason = "polling forced by the setting"
        assert watcher.sources() == [{"path": str(runs), "mode": "polling", "reason": reason}]
        assert watcher.polled([str(runs)]) == [str(runs)]
        assert watcher.watches == 0
    finally:
        watcher.close()


def test_a_missing_root_is_polled_until_it_exists(tmp_path, changes, watcher):
    later = tmp_path / "later" / "runs"
    watcher.watch([str(later)], [])
    assert watcher.sources() == [
        {"path": str(later), "mode": "polling", "reason": "does not exist yet"}
    ]
    later.mkdir(parents=True)
    watcher.watch([str(later)], [])
    assert watcher.polled([str(later)]) == []
    until_reported(changes, later / "run1", make_dir(later / "run1"))


def test_close_stops_the_threads(runs, changes):
    before = set(threading.enumerate())
    watcher = RunsWatcher(changes)
    watcher.watch([str(runs)], [str(runs / "aaa")])
    until_reported(changes, runs / "aaa" / "f", write(runs / "aaa" / "f"))
    started = [t for t in threading.enumerate() if t not in before]
    assert started and all(t.daemon for t in started)
    watcher.close()
    assert not [t for t in started if t.is_alive()]
    watcher.watch([str(runs)], [str(runs / "aaa")])  # closed: does nothing
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
25 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:44 / /srv/data rw,relatime shared:30 - nfs4 fs1:/export/data rw,vers=4.2
41 40 0:45 / /srv/data/local rw,relatime - ext4 /dev/sdb1 rw
42 22 0:46 / /mnt/my\\040drive rw,nosuid,nodev,relatime shared:31 - fuse.sshfs me@host:/ rw
not a mountinfo line
"""


def test_the_mount_table_names_each_paths_file_system():
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.fs_type for m in mounts] == ["ext4", "proc", "nfs4", "ext4", "fuse.sshfs"]
    assert filesystem_type("/srv/data/runs/1", mounts) == "nfs4"
    assert filesystem_type("/srv/data", mounts) == "nfs4"
    assert filesystem_type("/srv/data/local/runs", mounts) == "ext4"  # longest prefix
    assert filesystem_type("/srv/database", mounts) == "ext4"  # not under /srv/data
    assert filesystem_type("/mnt/my drive/x", mounts) == "fuse.sshfs"
    assert mount_of("/home/me", mounts) == ("/", "ext4")
    assert filesystem_type("/x", []) == ""


def test_network_and_fuse_mounts_are_not_trusted():
    assert untrusted_reason("nfs4") == "nfs4 mount: inotify does not see other machines' writes"
    assert untrusted_reason("fuse.sshfs").startswith("fuse.sshfs mount:")
    assert untrusted_reason("cifs")
    assert untrusted_reason("ext4") == ""
    assert untrusted_reason("tmpfs") == ""
    assert untrusted_reason("") == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mountinfo")
def test_the_live_mount_table_is_read():
    assert filesystem_type("/proc") == "proc"
    assert filesystem_type("/proc/self/status") == "proc"


# -- the watch limit, lowered for real in a user namespace of its own ----------

LIMIT_CHILD = """
import json, os, sys, time
from jupyter_guildimg.engine.fswatch import RunsWatcher

def polled(watcher, root):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not watcher.polled([root]):
        time.sleep(0.1)
    return watcher.sources()

big, growing = sys.argv[1], sys.argv[2]
out = {}
watcher = RunsWatcher(lambda paths: None)
watcher.watch([big], [])
out["big"] = polled(watcher, big)
watcher.watch([growing], [])
out["before"] = watcher.sources()
time.sleep(0.5)  # not asserted on: gives the watch time to start before the tree grows
deadline = time.monotonic() + 10
n = 0
while time.monotonic() < deadline and not watcher.polled([growing]):
    os.makedirs(os.path.join(growing, f"run{n}", "images"))
    n += 1
    time.sleep(0.05)
out["grown"] = watcher.sources()
out["watches"] = watcher.watches
watcher.close()
print(json.dumps(out))
"""


def test_a_watch_limit_reached_is_polled_and_said(tmp_path):
    big = tmp_path / "big"
    for n in range(30):
        (big / f"run{n}" / "images").mkdir(parents=True)
    growing = tmp_path / "growing"
    growing.mkdir()
    child = python_with_inotify_limits(LIMIT_CHILD, str(big), str(growing), watches=10)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    reason = "watch limit reached (max_user_watches=10)"
    assert out["big"] == [{"path": str(big), "mode": "polling", "reason": reason}]
    assert out["before"] == [{"path": str(growing), "mode": "events", "reason": ""}]
    assert out["grown"] == [{"path": str(growing), "mode": "polling", "reason": reason}]
    assert out["watches"] == 0
    assert child.stderr.count(reason) == 1  # said once, however many batches
