"""The view TensorBoard reads (a directory of links to the selected runs) and the
selection policy, over a real monitor of real Guild runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.layout import IMAGES_DIR
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.engine.selection import SelectionError
from jupyter_guildimg.engine.view import TensorBoardView, temp_view_dir
from jupyter_guildimg.guild.project import write_run

from helpers import png


def running_run(home: Path, **kwargs: object) -> str:
    """A run Guild is running: no exit status, a LOCK holding a live pid (ours)."""
    run_dir = write_run(home, exit_status=None, **kwargs)  # type: ignore[arg-type]
    Path(run_dir, ".guild", "LOCK").write_text(str(os.getpid()))
    return run_dir


@pytest.fixture
def monitor(home: GuildHome, logdir: str) -> Iterator[RunsMonitor]:
    monitor = RunsMonitor(logdir, home.list_runs)
    yield monitor
    monitor.close()


@pytest.fixture
def view(monitor: RunsMonitor, tmp_path: Path) -> TensorBoardView:
    view = TensorBoardView(str(tmp_path / "view"), monitor.logdir, limit=3)
    view.attach(monitor)
    return view


def links(view: TensorBoardView) -> dict[str, str]:
    """The view dir's links: name -> target."""
    paths = [Path(view.view_dir, name) for name in os.listdir(view.view_dir)]
    return {path.name: os.readlink(path) for path in paths if path.is_symlink()}


def key(run_dir: str) -> str:
    return Path(run_dir).name


def test_every_run_is_shown_while_there_are_at_most_the_limit(guild_home, monitor, view):
    runs = [
        write_run(guild_home, op="train", started=100 + i, files={"a.png": png()}) for i in range(3)
    ]
    monitor.run_pass()

    shown = links(view)
    assert len(shown) == 3
    for view_of_run in monitor.views:  # one link per run, named as its log dir, to it
        name = os.path.basename(view_of_run.log_dir)
        assert shown[name] == view_of_run.log_dir
        assert Path(view.view_dir, name, IMAGES_DIR).is_dir()  # TensorBoard follows it
    selection = view.selection()
    assert selection == {
        "mode": "auto",
        "runs": [key(d) for d in reversed(runs)],  # newest first
        "filter": "",
        "shown": 3,
        "total": 3,
        "limit": 3,
        "summary": "3 of 3 runs",
        "rule": "auto: every run while there are at most 3",
    }
    assert view.shown() == {key(d) for d in runs}


def test_past_the_limit_the_newest_and_every_running_run(guild_home, monitor, view):
    old_running = running_run(guild_home, op="train", started=10)
    finished = [write_run(guild_home, op="train", started=100 + i) for i in range(4)]
    monitor.run_pass()

    selection = view.selection()
    newest = [key(d) for d in reversed(finished)][:3]
    assert selection["runs"] == [*newest, key(old_running)]
    assert (selection["shown"], selection["total"]) == (4, 5)
    assert len(links(view)) == 4

    # The running run ends: it leaves the view at the next pass.
    os.remove(Path(old_running, ".guild", "LOCK"))
    monitor.run_pass()
    assert view.selection()["runs"] == newest
    assert len(links(view)) == 3


def test_a_list_of_runs_is_shown_and_a_run_gone_simply_is_not(guild_home, monitor, view):
    first, second, third = (write_run(guild_home, op="train", started=t) for t in (1, 2, 3))
    monitor.run_pass()
    catalog = Catalog(monitor)

    chosen = view.set_selection("runs", [key(first)[:6], key(third)], find=catalog.find)
    assert chosen["mode"] == "runs" and chosen["runs"] == [key(third), key(first)]
    assert (chosen["shown"], chosen["total"]) == (2, 3)
    assert sorted(links(view)) == sorted(
        os.path.basename(v.log_dir) for v in monitor.views if v.run.dir != second
    )

    shutil.rmtree(third)
    monitor.run_pass()
    assert view.selection()["runs"] == [key(first)]
    assert len(links(view)) == 1
    assert view.set_selection("runs", [])["shown"] == 0  # an empty list: no run
    assert links(view) == {}
    catalog.close()


def test_a_run_key_that_names_no_run_is_refused_and_nothing_changes(guild_home, monitor, view):
    write_run(guild_home, op="train")
    monitor.run_pass()
    catalog = Catalog(monitor)
    before = view.selection()
    with pytest.raises(SelectionError, match="no run 'nope'"):
        view.set_selection("runs", ["nope"], find=catalog.find)
    assert view.selection() == before
    catalog.close()


def test_a_filter_keeps_what_the_catalogs_filter_keeps(guild_home, monitor, view):
    write_run(guild_home, op="train", label="lr=0.1 big")
    write_run(guild_home, op="eval", label="lr=0.2")
    running_run(guild_home, op="prepare")
    monitor.run_pass()
    catalog = Catalog(monitor)
    for q in ("train", "LR=0.", "eval lr", "running", "nothing", "", "prep run"):
        selection = view.set_selection("filter", filter=q)
        assert selection["runs"] == [run["id"] for run in catalog.runs(q=q)], q
        assert selection["filter"] == q and selection["shown"] == len(links(view)), q
    # Runs that come later are shown when they match.
    view.set_selection("filter", filter="train")
    later = write_run(guild_home, op="train", label="later")
    monitor.run_pass()
    assert key(later) in view.shown()
    assert view.set_selection("auto")["shown"] == 3  # back to the policy (limit 3)
    catalog.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON body"),
        ({}, "mode must be one of 'auto', 'runs', 'filter', not None"),
        ({"mode": "all"}, "mode must be one of"),
        ({"mode": "auto", "limit": 3}, "unknown key 'limit'"),
        ({"mode": "auto", "runs": []}, "runs goes with mode 'runs'"),
        ({"mode": "runs"}, "mode 'runs' needs runs"),
        ({"mode": "runs", "runs": "abc"}, "mode 'runs' needs runs"),
        ({"mode": "runs", "runs": [""]}, "mode 'runs' needs runs"),
        ({"mode": "filter"}, "mode 'filter' needs filter"),
        ({"mode": "filter", "filter": 3}, "mode 'filter' needs filter"),
        ({"mode": "runs", "runs": [], "filter": ""}, "filter goes with mode 'filter'"),
    ],
)
def test_a_bad_body_is_refused_with_a_clear_message(view, body, message):
    with pytest.raises(SelectionError, match=message):
        view.put(body)
    assert view.selection()["mode"] == "auto"


def test_only_its_own_links_are_touched(guild_home, monitor, view):
    for started in (1, 2):
        write_run(guild_home, op="train", started=started)
    monitor.run_pass()
    names = {os.path.basename(v.log_dir): v.log_dir for v in monitor.views}
    taken, free = sorted(names)
    # A name already in the view dir that the view did not make: left alone.
    os.unlink(Path(view.view_dir, taken))
    Path(view.view_dir, taken).write_text("someone's")
    Path(view.view_dir, "notes.txt").write_text("someone's")
    view.set_selection("auto")
    assert Path(view.view_dir, taken).read_text() == "someone's"
    assert links(view) == {free: names[free]}
    view.set_selection("runs", [])
    assert sorted(os.listdir(view.view_dir)) == sorted([taken, "notes.txt"])
    # Once the name is free again, the run is linked.
    os.remove(Path(view.view_dir, taken))
    view.set_selection("auto")
    assert links(view) == names
    assert Path(view.view_dir, "notes.txt").read_text() == "someone's"


def test_the_view_dir_never_overlaps_the_log_dir(tmp_path, monkeypatch):
    logdir = tmp_path / "logdir"
    for view_dir in (logdir / "view", tmp_path):
        with pytest.raises(ValueError, match="overlap"):
            TensorBoardView(str(view_dir), str(logdir))
    temp = tmp_path / "outer" / "temp"
    temp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # as TMPDIR would
    made = temp_view_dir("guildimg-test-", str(logdir))
    assert Path(made).parent == temp and Path(made).is_dir()
    assert Path(made).name.startswith(f"guildimg-test-{os.getpid()}-view-")
    # A log dir holding the temporary directory: the view goes next to the log dir.
    beside = temp_view_dir("guildimg-test-", str(tmp_path / "outer"))
    assert Path(beside).parent == tmp_path


def count_event_files(view_dir: str) -> int:
    """The event files TensorBoard finds in the view: every name holding "tfevents",
    following the links."""
    return sum(
        1
        for _dirpath, _dirnames, filenames in os.walk(view_dir, followlinks=True)
        for name in filenames
        if "tfevents" in name
    )


def test_files_needed_counts_the_event_files_tensorboard_opens(guild_home, monitor, view):
    assert view.files_needed() == 0
    own_events = {"tb/events.out.tfevents.1700000000.host": b"x"}
    first = write_run(guild_home, op="train", started=1, files={"a.png": png(), **own_events})
    write_run(guild_home, op="train", started=2, files={"b.png": png(), "c.png": png()})
    monitor.run_pass()
    Path(first, "a.png").write_bytes(png(colour="blue"))  # a second revision
    old = time.time() - 10
    os.utime(Path(first, "a.png"), (old, old))
    monitor.run_pass()

    assert view.files_needed() == count_event_files(view.view_dir)
    # 2 + 2 revisions, 2 + 2 HParams files (start and end), 1 of the run's own.
    assert view.files_needed() == 9
    view.set_selection("runs", [key(first)])
    assert view.files_needed() == count_event_files(view.view_dir) == 5


def test_a_closed_view_changes_nothing(guild_home, monitor, view):
    write_run(guild_home, op="train")
    monitor.run_pass()
    view.close()
    write_run(guild_home, op="train")
    monitor.run_pass()
    assert len(links(view)) == 1


def test_only_keeps_other_runs_out_whatever_the_selection(guild_home, monitor, tmp_path):
    kept = write_run(guild_home, op="train", started=2)
    write_run(guild_home, op="eval", started=1)
    view = TensorBoardView(
        str(tmp_path / "view"), monitor.logdir, only=lambda run: run.operation == "train"
    )
    view.attach(monitor)
    monitor.run_pass()
    assert view.selection()["runs"] == [key(kept)]
    assert view.selection()["total"] == 1
    assert view.set_selection("filter", filter="")["runs"] == [key(kept)]
