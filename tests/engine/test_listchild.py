"""A cold Guild home listed in a child process: the same runs as the home lists
itself, the cache handed back so the next listing stays warm, and a child that fails
or hangs costs only time (the home lists in its own process)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from jupyter_guildimg.engine import runs as runs_module
from jupyter_guildimg.engine.listchild import RUNS_PER_PICKLE, child_listing, list_in_child
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome, combine_sources
from jupyter_guildimg.guild.project import write_run

from helpers import age, png


def _home(home: GuildHome) -> list[str]:
    """Three runs, oldest first, written long enough ago to be cached."""
    made = [
        write_run(home.path, op="train", started=1_000, files={"a.png": png()}),
        write_run(home.path, op="eval", label="best", flags={"lr": 0.1, "layers": [2, 3]}),
        write_run(home.path, op="train", exit_status=None),  # unfinished: "error"
    ]
    _age(made)
    return made


def _age(run_dirs: list[str]) -> None:
    """Every file and dir of the runs written an hour ago: cached when listed."""
    for run_dir in run_dirs:
        for parent, dirs, files in os.walk(run_dir):
            for name in dirs + files:
                age(os.path.join(parent, name), 3600)


@pytest.fixture
def spied(monkeypatch):
    """Calls of the child listing from GuildHome, made for real; every listing of
    three runs or more counts as cold enough for a child."""
    calls: list[str] = []

    def spy(path: str, *args: object, **kwargs: object):
        calls.append(path)
        return list_in_child(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runs_module, "list_in_child", spy)
    monkeypatch.setattr(runs_module, "LIST_IN_CHILD_AT", 3)
    return calls


def test_a_child_lists_what_the_home_lists_itself(home):
    _home(home)
    listed = list_in_child(home.path)
    assert listed.ok, listed.message
    assert list(listed.runs) == list(GuildHome(home.path).list_runs())
    assert [run.operation for run in listed.runs] == ["train", "eval", "train"]  # newest first
    assert listed.runs[0].status == "error"
    assert listed.runs[1].flags == {"lr": 0.1, "layers": [2, 3]}
    assert listed.runs[2].status == "completed"


def test_a_listing_of_many_pickles_comes_back_whole_and_in_order(home):
    made = [write_run(home.path, op="train", started=1_000 + i) for i in range(RUNS_PER_PICKLE + 1)]
    _age(made)
    listed = list_in_child(home.path)
    assert listed.ok, listed.message
    assert [run.dir for run in listed.runs] == made[::-1]
    assert list(listed.runs) == list(GuildHome(home.path).list_runs())
    # Each cache entry is the listed run itself, whichever pickle it came in.
    by_dir = {run.dir: run for run in listed.runs}
    assert listed.cache is not None and len(listed.cache) == len(made)
    assert all(run is by_dir[run.dir] for _signature, run in listed.cache.values())


def test_a_home_lists_in_a_child_only_when_allowed_and_cold(home, spied):
    made = _home(home)
    assert len(GuildHome(home.path).list_runs()) == 3
    assert spied == []  # not allowed: a kernel, a script

    source = GuildHome(home.path)
    allowed = child_listing.set(True)
    try:
        first = source.list_runs()
        assert spied == [home.path]
        Path(made[0], ".guild", "attrs", "label").write_text("relabelled\n")
        second = source.list_runs()  # warm: the child's cache, not a second child
    finally:
        child_listing.reset(allowed)
    assert spied == [home.path]
    assert [run.dir for run in first] == [run.dir for run in second]
    relabelled = {run.dir: run for run in second}[made[0]]
    assert relabelled.label == "relabelled"
    # The runs that did not change are the child's own objects, from its cache.
    assert {run.dir: run for run in second}[made[1]] is {run.dir: run for run in first}[made[1]]


def test_a_child_that_fails_leaves_the_listing_to_the_home(home, spied, monkeypatch, caplog):
    _home(home)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    allowed = child_listing.set(True)
    try:
        with caplog.at_level(logging.WARNING, logger="jupyter_guildimg.engine.runs"):
            listed = GuildHome(home.path).list_runs()
    finally:
        child_listing.reset(allowed)
    assert spied == [home.path]
    assert len(listed) == 3
    assert "the listing child process exited with status 1" in caplog.text
    assert "listing GuildHome" in caplog.text and "in the server process instead" in caplog.text


def test_a_child_that_takes_too_long_is_given_up(home):
    _home(home)
    listed = list_in_child(home.path, timeout=0.01)
    assert not listed.ok
    assert listed.message == "the listing child process took over 0 s"


def test_the_monitor_of_the_extension_lists_a_cold_home_in_a_child(home, logdir, spied):
    made = _home(home)
    monitor = RunsMonitor(logdir, combine_sources([home]), index_process=True)
    try:
        monitor.run_pass()
        assert spied == [home.path]
        assert {view.run.dir for view in monitor.views} == set(made)
        monitor.run_pass()  # warm
        assert spied == [home.path]
    finally:
        monitor.close()


def test_a_monitor_in_a_kernel_lists_in_its_own_process(home, logdir, spied):
    made = _home(home)
    monitor = RunsMonitor(logdir, combine_sources([home]))
    try:
        monitor.run_pass()
        assert {view.run.dir for view in monitor.views} == set(made)
    finally:
        monitor.close()
    assert spied == []
