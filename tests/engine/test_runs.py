"""Runs as jupyter_guildimg reads them: Guild homes (compared with what Guild 0.9 itself
reports about real runs it made) and plain runs directories (PyTorch, Lightning, Hydra).

The Guild runs in tests/resources/guild-home/ were made by Guild with
tests/resources/make_guild_home.sh, which also wrote EXPECTED.json from `guild select`,
`guild runs info` and `guild ls -s`. Guild is not needed to run these tests.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import jupyter_guildimg.engine.runs as runs_module
from jupyter_guildimg.engine.runs import (
    GuildHome,
    Run,
    RunList,
    RunsDir,
    RunSource,
    Unreadable,
    combine_sources,
    default_guild_home,
    open_source,
    parse_source,
    read_guild_run,
)
from jupyter_guildimg.guild.project import write_run

from helpers import RESOURCES

FIXTURE_HOME = RESOURCES / "guild-home"
EXPECTED: list[dict[str, Any]] = json.loads((FIXTURE_HOME / "EXPECTED.json").read_text())["runs"]


def expected_run(**match: Any) -> dict[str, Any]:
    """The one run of EXPECTED.json whose fields equal ``match``."""
    found = [e for e in EXPECTED if all(e[k] == v for k, v in match.items())]
    assert len(found) == 1, f"fixture has {len(found)} runs matching {match}"
    return found[0]


@pytest.fixture
def fixture_home(tmp_path: Path) -> Path:
    """A private copy of the Guild home made by Guild (tests change their copy)."""
    home = tmp_path / "guild-home"
    shutil.copytree(FIXTURE_HOME / "runs", home / "runs", symlinks=True)
    return home


def run_dir(home: Path, **match: Any) -> Path:
    return home / "runs" / expected_run(**match)["id"]


def by_id(runs: list[Run]) -> dict[str, Run]:
    return {run.id: run for run in runs}


def set_guild_mtimes(run: Path, when: float) -> None:
    """Set the modification time of every entry of ``run/.guild`` (itself included)."""
    guild = run / ".guild"
    for dirpath, dirnames, filenames in os.walk(guild):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (when, when))
    os.utime(guild, (when, when))


def age_all_runs(home: Path, seconds: float = 60.0) -> None:
    """Make every run's metadata ``seconds`` old: old enough for the metadata cache."""
    when = time.time() - seconds
    for run in (home / "runs").iterdir():
        set_guild_mtimes(run, when)


def make_running(run: Path, pid: int) -> None:
    """Turn a finished run back into one Guild is running (LOCK holds the pid)."""
    attrs = run / ".guild" / "attrs"
    (attrs / "exit_status").unlink()
    (attrs / "stopped").unlink()
    (run / ".guild" / "LOCK").write_text(str(pid))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def typed(flags: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Flags with their types, so True and 1 (or 1 and 1.0) are not taken as equal."""
    return {name: (type(value).__name__, value) for name, value in flags.items()}


# ---------------------------------------------------------------------------
# Guild homes: what Guild itself reports


def test_fixture_covers_the_cases_it_is_for() -> None:
    # Guards against regenerating the fixture into something these tests no longer test.
    assert {e["status"] for e in EXPECTED} == {"completed", "error", "terminated", "staged"}
    assert {"train", "m:op", "fail", "slow"} <= {e["operation"] for e in EXPECTED}
    assert "my label" in {e["label"] for e in EXPECTED}
    assert {"int", "float", "bool", "str"} <= {
        type(value).__name__ for e in EXPECTED for value in e["flags"].values()
    }


def test_guild_home_lists_runs_in_guild_order(fixture_home: Path) -> None:
    runs = GuildHome(fixture_home).list_runs()

    # `guild select -A` lists newest first, and so do we.
    assert [run.id for run in runs] == [e["id"] for e in EXPECTED]
    assert [run.started for run in runs] == sorted((run.started for run in runs), reverse=True)


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: f"{e['operation']}-{e['id'][:8]}")
def test_guild_run_matches_what_guild_reports(fixture_home: Path, expected: dict[str, Any]) -> None:
    run = by_id(GuildHome(fixture_home).list_runs())[expected["id"]]

    assert run.operation == expected["operation"]
    assert run.label == expected["label"]
    assert run.status == expected["status"]
    assert run.started == expected["started"] / 1_000_000
    started_utc = datetime.fromtimestamp(run.started, timezone.utc)
    assert started_utc.strftime("%Y-%m-%d %H:%M:%S") == expected["started_utc"]
    if expected["stopped"] is None:
        assert run.stopped is None
    else:
        assert run.stopped == expected["stopped"] / 1_000_000
    assert typed(dict(run.flags)) == typed(expected["flags"])
    # `guild ls -s`: the files Guild copied as source code (at the run root in 0.9).
    assert run.sourcecode == frozenset(expected["sourcecode"])
    assert run.dir == str(fixture_home / "runs" / expected["id"])
    assert run.short_id == expected["id"][:8]
    assert run.kind == "guild"
    assert run.source == str(fixture_home)


def test_images_a_run_wrote_are_not_source_code(fixture_home: Path) -> None:
    for run in GuildHome(fixture_home).list_runs():
        for output in ("sample.png", "samples/x.png"):
            if os.path.exists(os.path.join(run.dir, output)):
                assert output not in run.sourcecode
                assert os.path.normpath(output) not in run.sourcecode


def test_read_guild_run_reads_one_run(fixture_home: Path) -> None:
    expected = expected_run(label="my label")
    run = read_guild_run(str(fixture_home / "runs" / expected["id"]), "somewhere")

    assert run is not None
    assert (run.id, run.operation, run.status, run.source) == (
        expected["id"],
        "train",
        "completed",
        "somewhere",
    )


# ---------------------------------------------------------------------------
# Guild homes: status rules (DESIGN.md), on copies of real runs


def status_of(home: Path, run: Path) -> str:
    return by_id(GuildHome(home).list_runs())[run.name].status


def test_lock_with_a_live_pid_is_running(fixture_home: Path) -> None:
    run = run_dir(fixture_home, label="my label")
    make_running(run, os.getpid())

    listed = by_id(GuildHome(fixture_home).list_runs())[run.name]
    assert listed.status == "running"
    assert listed.stopped is None


def test_lock_with_a_dead_pid_is_error(fixture_home: Path) -> None:
    run = run_dir(fixture_home, label="my label")
    make_running(run, dead_pid())

    assert status_of(fixture_home, run) == "error"


def test_lock_of_another_users_live_process_is_running(
    fixture_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shared Guild home: the run's process belongs to someone else, so signalling
    # it is not permitted, yet it is alive.
    run = run_dir(fixture_home, label="my label")
    make_running(run, 4242)
    real_kill = os.kill

    def kill(pid: int, signal: int) -> None:
        if pid == 4242:
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, signal)

    monkeypatch.setattr(os, "kill", kill)

    assert status_of(fixture_home, run) == "running"


def test_no_exit_status_and_no_lock_is_error(fixture_home: Path) -> None:
    run = run_dir(fixture_home, label="my label")
    (run / ".guild" / "attrs" / "exit_status").unlink()

    assert status_of(fixture_home, run) == "error"


@pytest.mark.parametrize(
    ("marker", "status"),
    [("LOCK.remote", "running"), ("PENDING", "pending"), ("STAGED", "staged")],
)
def test_marker_files_set_the_status(fixture_home: Path, marker: str, status: str) -> None:
    run = run_dir(fixture_home, label="my label")
    make_running(run, dead_pid())  # these markers win over the LOCK
    (run / ".guild" / marker).touch()

    assert status_of(fixture_home, run) == status


@pytest.mark.parametrize(
    ("exit_status", "status"), [(0, "completed"), (-9, "terminated"), (1, "error")]
)
def test_exit_status_sets_the_status(fixture_home: Path, exit_status: int, status: str) -> None:
    run = run_dir(fixture_home, label="my label")
    (run / ".guild" / "attrs" / "exit_status").write_text(f"{exit_status}\n")

    assert status_of(fixture_home, run) == status


def test_a_run_with_only_initialized_lists_by_that_time(fixture_home: Path) -> None:
    run = run_dir(fixture_home, label="my label")
    attrs = run / ".guild" / "attrs"
    (attrs / "started").unlink()

    listed = by_id(GuildHome(fixture_home).list_runs())[run.name]
    assert listed.started == int((attrs / "initialized").read_text()) / 1_000_000


def test_opref_of_a_project_path_with_spaces(fixture_home: Path) -> None:
    # As Guild 0.9 writes it for a project in "/p/my project" (checked with guild 0.9.0).
    run = run_dir(fixture_home, label="my label")
    (run / ".guild" / "opref").write_text(
        "guildfile:'/p/my project/guild.yml' 0875768d82d3af52141370ea321bcaa7 m train\n"
    )

    assert by_id(GuildHome(fixture_home).list_runs())[run.name].operation == "m:train"


@pytest.mark.parametrize("label", ["2024", "yes", "007"])
def test_labels_guild_quotes_stay_text(fixture_home: Path, label: str) -> None:
    # Guild 0.9 writes `--label 2024` as '2024' so that YAML reads it back as text.
    run = run_dir(fixture_home, label="my label")
    (run / ".guild" / "attrs" / "label").write_text(f"'{label}'\n")

    assert by_id(GuildHome(fixture_home).list_runs())[run.name].label == label


# ---------------------------------------------------------------------------
# Guild homes: what changes between two calls of list_runs()


@pytest.mark.parametrize("metadata_age", [0.0, 60.0], ids=["fresh", "cached"])
def test_changed_label_shows_on_the_next_call(fixture_home: Path, metadata_age: float) -> None:
    age_all_runs(fixture_home, metadata_age)
    home = GuildHome(fixture_home)
    run = run_dir(fixture_home, label="my label")
    assert by_id(home.list_runs())[run.name].label == "my label"

    (run / ".guild" / "attrs" / "label").write_text("better label\n")

    assert by_id(home.list_runs())[run.name].label == "better label"


@pytest.mark.parametrize("metadata_age", [0.0, 60.0], ids=["fresh", "cached"])
def test_added_exit_status_shows_on_the_next_call(fixture_home: Path, metadata_age: float) -> None:
    run = run_dir(fixture_home, label="my label")
    (run / ".guild" / "attrs" / "exit_status").unlink()
    age_all_runs(fixture_home, metadata_age)
    home = GuildHome(fixture_home)
    assert by_id(home.list_runs())[run.name].status == "error"

    (run / ".guild" / "attrs" / "exit_status").write_text("0\n")

    assert by_id(home.list_runs())[run.name].status == "completed"


def test_unchanged_old_metadata_is_not_read_again(
    fixture_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    age_all_runs(fixture_home)
    home = GuildHome(fixture_home)
    first = home.list_runs()
    reads: list[str] = []
    real_read = runs_module.read_guild_run

    def counting_read(path: str, source: str = "") -> Run | None:
        reads.append(path)
        return real_read(path, source)

    monkeypatch.setattr(runs_module, "read_guild_run", counting_read)

    assert home.list_runs() == first
    assert reads == []


def test_metadata_rewritten_within_the_same_second_is_read_again(fixture_home: Path) -> None:
    # A label rewritten with the same modification time: only trusting metadata
    # older than a few seconds lets the next call see it.
    run = run_dir(fixture_home, label="my label")
    label = run / ".guild" / "attrs" / "label"
    set_guild_mtimes(run, time.time())
    home = GuildHome(fixture_home)
    assert by_id(home.list_runs())[run.name].label == "my label"

    before = label.stat()
    label.write_text("same tick\n")
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert by_id(home.list_runs())[run.name].label == "same tick"


def test_running_run_whose_process_dies_becomes_error(fixture_home: Path) -> None:
    # Killed runs leave their LOCK behind and touch no file: still noticed.
    run = run_dir(fixture_home, label="my label")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        make_running(run, child.pid)
        age_all_runs(fixture_home)
        home = GuildHome(fixture_home)
        assert by_id(home.list_runs())[run.name].status == "running"
    finally:
        child.kill()
        child.wait()

    assert by_id(home.list_runs())[run.name].status == "error"


@pytest.mark.parametrize("metadata_age", [0.0, 60.0], ids=["fresh", "cached"])
def test_deleted_run_disappears(fixture_home: Path, metadata_age: float) -> None:
    age_all_runs(fixture_home, metadata_age)
    home = GuildHome(fixture_home)
    run = run_dir(fixture_home, operation="fail")
    assert run.name in by_id(home.list_runs())

    shutil.rmtree(run)

    listed = home.list_runs()
    assert run.name not in by_id(listed)
    assert len(listed) == len(EXPECTED) - 1


def test_new_run_appears(fixture_home: Path) -> None:
    age_all_runs(fixture_home)
    home = GuildHome(fixture_home)
    home.list_runs()
    source = run_dir(fixture_home, label="my label")
    new_id = "0123456789abcdef0123456789abcdef"
    shutil.copytree(source, fixture_home / "runs" / new_id, symlinks=True)

    assert new_id in by_id(home.list_runs())


def test_directory_without_opref_is_not_a_run(fixture_home: Path) -> None:
    not_a_run = fixture_home / "runs" / "fedcba9876543210fedcba9876543210"
    (not_a_run / ".guild" / "attrs").mkdir(parents=True)
    (not_a_run / ".guild" / "attrs" / "started").write_text("1700000000000000\n")
    (fixture_home / "runs" / "stray-file").write_text("not a run\n")
    made_by_guild = run_dir(fixture_home, operation="fail")
    (made_by_guild / ".guild" / "opref").unlink()

    ids = set(by_id(GuildHome(fixture_home).list_runs()))

    assert ids == {e["id"] for e in EXPECTED} - {made_by_guild.name}
    assert read_guild_run(str(not_a_run)) is None


def test_missing_home_lists_nothing(tmp_path: Path) -> None:
    assert GuildHome(tmp_path / "no-such-home").list_runs() == []


def test_home_removed_between_calls_lists_nothing(fixture_home: Path) -> None:
    home = GuildHome(fixture_home)
    assert len(home.list_runs()) == len(EXPECTED)

    shutil.rmtree(fixture_home)

    assert home.list_runs() == []


# ---------------------------------------------------------------------------
# Where GuildHome() looks by default


def test_default_home_is_guild_home_variable(
    fixture_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUILD_HOME", str(fixture_home))

    assert GuildHome().path == str(fixture_home)
    assert default_guild_home() == str(fixture_home)
    assert len(GuildHome().list_runs()) == len(EXPECTED)


def test_relative_guild_home_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUILD_HOME", "homes/guild")

    assert GuildHome().path == str(tmp_path / "homes" / "guild")


def test_default_home_without_variable_is_dot_guild_in_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_home = tmp_path / "user"
    monkeypatch.delenv("GUILD_HOME", raising=False)
    monkeypatch.setenv("HOME", str(user_home))

    assert GuildHome().path == str(user_home / ".guild")
    assert GuildHome().list_runs() == []


# ---------------------------------------------------------------------------
# Plain runs directories


def write_files(root: Path, *relpaths: str) -> None:
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def set_tree_mtime(root: Path, when: float) -> None:
    """``root`` and everything below it modified at ``when``."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (when, when))
    os.utime(root, (when, when))


def ids(source: RunSource) -> list[str]:
    return [run.id for run in source.list_runs()]


def test_pytorch_runs_directory(tmp_path: Path) -> None:
    # torch.utils.tensorboard.SummaryWriter(): runs/<date>_<host>/events..., and
    # SummaryWriter("runs/exp1") for named runs.
    runs = tmp_path / "runs"
    write_files(
        runs,
        "May01_12-00-00_host/events.out.tfevents.1714564800.host.1234.0",
        "exp1/events.out.tfevents.1714568400.host.1235.0",
        "exp1/confusion.png",
        "README.txt",  # a file beside the runs is not a run of its own
    )
    now = time.time()
    set_tree_mtime(runs / "May01_12-00-00_host", now - 3600)
    set_tree_mtime(runs / "exp1", now - 1800)

    listed = RunsDir(runs).list_runs()

    assert [run.id for run in listed] == ["exp1", "May01_12-00-00_host"]
    exp1 = listed[0]
    assert exp1.dir == str(runs / "exp1")
    assert exp1.short_id == "exp1"
    assert exp1.kind == "dir"
    assert exp1.operation == ""
    assert exp1.source == str(runs)
    assert exp1.status == "completed"


def test_lightning_logs(tmp_path: Path) -> None:
    logs = tmp_path / "lightning_logs"
    for version in ("version_0", "version_1"):
        write_files(
            logs / version,
            "hparams.yaml",
            "events.out.tfevents.1714564800.host.1234.0",
            "checkpoints/epoch=0-step=10.ckpt",
        )
    now = time.time()
    set_tree_mtime(logs / "version_0", now - 600)
    set_tree_mtime(logs / "version_1", now - 300)

    assert ids(RunsDir(logs)) == ["version_1", "version_0"]
    # Pointed at the project instead, the ids say where the runs are.
    assert ids(RunsDir(tmp_path)) == ["lightning_logs/version_1", "lightning_logs/version_0"]


def test_hydra_outputs(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    jobs = {"2024-05-01/12-30-00": 3000, "2024-05-01/13-00-00": 2000, "2024-05-02/09-15-00": 1000}
    now = time.time()
    for job, age in jobs.items():
        write_files(
            outputs / job,
            ".hydra/config.yaml",
            ".hydra/hydra.yaml",
            ".hydra/overrides.yaml",
            "main.log",
        )
        set_tree_mtime(outputs / job, now - age)

    assert ids(RunsDir(outputs)) == [
        "2024-05-02/09-15-00",
        "2024-05-01/13-00-00",
        "2024-05-01/12-30-00",
    ]


def test_hidden_and_symlinked_directories_are_not_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    elsewhere = tmp_path / "elsewhere"
    write_files(
        runs,
        "exp1/events.out.tfevents.1714564800.host.1234.0",
        ".ipynb_checkpoints/notes-checkpoint.ipynb",
        ".trash/exp0/events.out.tfevents.1714564800.host.1234.0",
    )
    write_files(elsewhere, "exp2/events.out.tfevents.1714564800.host.1234.0")
    (runs / "linked").symlink_to(elsewhere / "exp2", target_is_directory=True)

    assert ids(RunsDir(runs)) == ["exp1"]


def test_hidden_file_does_not_make_a_group_folder_a_run(tmp_path: Path) -> None:
    # Finder leaves .DS_Store in every folder it shows; Hydra groups runs by date.
    outputs = tmp_path / "outputs"
    write_files(outputs, "2024-05-01/.DS_Store", "2024-05-01/12-30-00/main.log")

    assert ids(RunsDir(outputs)) == ["2024-05-01/12-30-00"]


def test_run_is_running_while_written_within_the_window(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp/events.out.tfevents.1", "exp/old.png")
    now = time.time()
    set_tree_mtime(runs / "exp", now - 90)
    os.utime(runs / "exp" / "events.out.tfevents.1", (now - 30, now - 30))

    (run,) = RunsDir(runs).list_runs()
    assert run.status == "running"
    assert run.stopped is None
    # A shorter window: the same run counts as finished.
    (run,) = RunsDir(runs, running_window=10).list_runs()
    assert run.status == "completed"
    assert run.stopped == pytest.approx(now - 30, abs=1e-3)


def test_run_is_completed_once_nothing_changed_for_the_window(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp/events.out.tfevents.1", "exp/last.png")
    now = time.time()
    set_tree_mtime(runs / "exp", now - 300)
    os.utime(runs / "exp" / "last.png", (now - 61, now - 61))

    (run,) = RunsDir(runs).list_runs()
    assert run.status == "completed"
    assert run.stopped == pytest.approx(now - 61, abs=1e-3)


def test_started_is_the_oldest_time_of_the_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp/hparams.yaml", "exp/events.out.tfevents.1", "exp/sub/deeper.png")
    now = time.time()
    set_tree_mtime(runs / "exp", now - 200)
    os.utime(runs / "exp" / "hparams.yaml", (now - 500, now - 500))
    os.utime(runs / "exp" / "events.out.tfevents.1", (now - 100, now - 100))

    (run,) = RunsDir(runs).list_runs()
    assert run.started == pytest.approx(now - 500, abs=1e-3)
    assert run.stopped == pytest.approx(now - 100, abs=1e-3)


def test_runs_deeper_than_the_depth_limit_are_not_found(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "a/b/c/events.out.tfevents.1", "x/y/z/w/events.out.tfevents.1")

    assert ids(RunsDir(runs)) == ["a/b/c"]
    assert sorted(ids(RunsDir(runs, max_depth=4))) == ["a/b/c", "x/y/z/w"]
    assert ids(RunsDir(runs, max_depth=2)) == []


def test_missing_runs_directory_lists_nothing(tmp_path: Path) -> None:
    assert RunsDir(tmp_path / "not-yet").list_runs() == []


def test_runs_directory_sees_new_and_removed_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp1/events.out.tfevents.1")
    source = RunsDir(runs)
    assert ids(source) == ["exp1"]

    write_files(runs, "exp2/events.out.tfevents.1")
    shutil.rmtree(runs / "exp1")

    assert ids(source) == ["exp2"]


# ---------------------------------------------------------------------------
# Choosing and combining sources


def test_open_source_recognises_a_guild_home(fixture_home: Path) -> None:
    source = open_source(fixture_home)

    assert isinstance(source, GuildHome)
    assert source.path == str(fixture_home)
    assert [run.id for run in source.list_runs()] == [e["id"] for e in EXPECTED]


def test_open_source_recognises_an_empty_dot_guild(tmp_path: Path) -> None:
    dot_guild = tmp_path / ".guild"
    dot_guild.mkdir()

    source = open_source(str(dot_guild))

    assert isinstance(source, GuildHome)
    assert source.list_runs() == []


def test_open_source_pytorch_runs_folder_is_not_a_guild_home(tmp_path: Path) -> None:
    # PyTorch also writes to a folder named runs/: a project holding one is no Guild home.
    write_files(tmp_path, "runs/exp1/events.out.tfevents.1")

    source = open_source(tmp_path)

    assert isinstance(source, RunsDir)
    assert ids(source) == ["runs/exp1"]


def test_open_source_plain_folder(tmp_path: Path) -> None:
    write_files(tmp_path / "lightning_logs", "version_0/hparams.yaml")

    source = open_source(tmp_path / "lightning_logs")

    assert isinstance(source, RunsDir)
    assert source.path == str(tmp_path / "lightning_logs")
    assert ids(source) == ["version_0"]


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_open_source_of_no_directory_names_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "my-runs"
    if kind == "file":
        path.write_text("not a directory\n")

    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        open_source(path)


def test_a_source_is_named_with_or_without_its_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    root = str(tmp_path / "root")

    assert parse_source("guild:homes/g") == ("guild", str(tmp_path / "homes" / "g"))
    assert parse_source("dir:~/runs") == ("dir", str(tmp_path / "me" / "runs"))
    assert parse_source("dir:runs", root) == ("dir", os.path.join(root, "runs"))
    assert parse_source("guild:", root) == ("guild", root)
    assert parse_source("runs", root) == (None, os.path.join(root, "runs"))
    assert parse_source("/abs/x", root) == (None, "/abs/x")
    # Only the two kinds are kinds: anything else with a colon is a path.
    assert parse_source("s3:bucket", root) == (None, os.path.join(root, "s3:bucket"))


def test_a_source_with_its_kind_is_that_kind_existing_or_not(tmp_path: Path) -> None:
    write_files(tmp_path / "plain", "exp1/events.out.tfevents.1")

    guild = open_source("guild:plain", str(tmp_path))
    assert isinstance(guild, GuildHome) and guild.path == str(tmp_path / "plain")
    later = open_source("dir:later", str(tmp_path))
    assert isinstance(later, RunsDir) and later.path == str(tmp_path / "later")


def test_a_missing_source_is_watched_for_when_missing_is_ok(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        open_source("runs", str(tmp_path))

    runs = open_source("runs", str(tmp_path), missing_ok=True)
    assert isinstance(runs, RunsDir) and runs.path == str(tmp_path / "runs")
    assert runs.list_runs() == []
    dot_guild = open_source(".guild", str(tmp_path), missing_ok=True)
    assert isinstance(dot_guild, GuildHome) and dot_guild.path == str(tmp_path / ".guild")


def test_combine_sources_merges_newest_first(fixture_home: Path, tmp_path: Path) -> None:
    # A plain run that started between the fixture's 2nd and 3rd newest Guild runs.
    between = (EXPECTED[1]["started"] + EXPECTED[2]["started"]) / 2 / 1_000_000
    plain = tmp_path / "lightning_logs"
    write_files(plain, "version_0/hparams.yaml")
    set_tree_mtime(plain / "version_0", between)

    list_runs = combine_sources([GuildHome(fixture_home), RunsDir(plain)])
    merged = [run.id for run in list_runs()]

    guild_ids = [e["id"] for e in EXPECTED]
    assert merged == [*guild_ids[:2], "version_0", *guild_ids[2:]]


class BrokenSource(RunSource):
    path = "/broken"

    def __repr__(self) -> str:
        return "BrokenSource()"

    def list_runs(self) -> list[Run]:
        raise PermissionError("runs folder not readable")


def test_combine_sources_survives_a_failing_source(
    fixture_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jupyter_guildimg.engine.runrecord")
    list_runs = combine_sources([BrokenSource(), GuildHome(fixture_home)])

    for _ in range(3):
        listing = list_runs()
        assert [run.id for run in listing] == [e["id"] for e in EXPECTED]
        # Its runs are unknown, not gone.
        assert listing.unreadable == [
            Unreadable("/broken", "listing failed: PermissionError: runs folder not readable")
        ]

    # The traceback once, not on every call.
    (record,) = [r for r in caplog.records if r.name == "jupyter_guildimg.engine.runrecord"]
    assert record.levelno == logging.WARNING
    assert "BrokenSource()" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], PermissionError)


def test_combined_sources_list_afresh_on_every_call(fixture_home: Path, tmp_path: Path) -> None:
    plain = tmp_path / "runs"
    list_runs = combine_sources([GuildHome(fixture_home), RunsDir(plain)])
    assert len(list_runs()) == len(EXPECTED)

    write_files(plain, "exp1/events.out.tfevents.1")

    merged = list_runs()
    assert len(merged) == len(EXPECTED) + 1
    assert merged[0].id == "exp1"  # written just now: newer than every Guild run


# -- what cannot be read is skipped and named, never taken for "no runs" ---------


def loop(path: Path) -> Path:
    """A symlink to itself at ``path``: stat() fails with ELOOP, for root too."""
    os.symlink(path.name, path)
    return path


def test_a_symlink_loop_in_a_run_is_skipped_and_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp1/a.png", "exp2/b.txt")
    loop(runs / "exp2" / "loop")

    listing = RunsDir(runs).list_runs()

    assert sorted(run.id for run in listing) == ["exp1", "exp2"]
    assert listing.unreadable == [
        Unreadable(str(runs / "exp2" / "loop"), "cannot read: Too many levels of symbolic links")
    ]


def test_a_folder_holding_only_a_symlink_loop_is_named_not_listed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp1/a.png")
    (runs / "exp2").mkdir()
    loop(runs / "exp2" / "loop")

    listing = RunsDir(runs).list_runs()

    assert [run.id for run in listing] == ["exp1"]
    assert [u.path for u in listing.unreadable] == [str(runs / "exp2" / "loop")]


def test_a_runs_dir_that_cannot_be_listed_names_itself(tmp_path: Path) -> None:
    runs = loop(tmp_path / "runs")
    listing = RunsDir(runs).list_runs()
    assert listing == []
    assert [u.path for u in listing.unreadable] == [str(runs)]


def test_a_runs_dir_that_does_not_exist_is_empty_not_unreadable(tmp_path: Path) -> None:
    listing = RunsDir(tmp_path / "missing").list_runs()
    assert listing == [] and listing.unreadable == []


def test_a_guild_home_whose_runs_cannot_be_listed_names_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE_HOME, home, symlinks=True)
    source = GuildHome(home)
    before = source.list_runs()
    os.rename(home / "runs", home / "runs.away")
    loop(home / "runs")

    listing = source.list_runs()

    assert listing == []
    assert listing.unreadable == [
        Unreadable(str(home / "runs"), "cannot read: Too many levels of symbolic links")
    ]
    os.remove(home / "runs")
    os.rename(home / "runs.away", home / "runs")
    assert source.list_runs() == before


def test_a_guild_run_that_cannot_be_read_is_named_and_the_others_listed(
    fixture_home: Path,
) -> None:
    expected_id = EXPECTED[0]["id"]
    guild = fixture_home / "runs" / expected_id / ".guild"
    os.rename(guild, guild.with_name("guild.away"))
    loop(guild)

    listing = GuildHome(fixture_home).list_runs()

    assert [run.id for run in listing] == [e["id"] for e in EXPECTED[1:]]
    assert [u.path for u in listing.unreadable] == [str(guild)]


def test_combine_sources_passes_on_what_its_sources_could_not_read(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_files(runs, "exp1/a.png")
    loop(runs / "exp1" / "loop")
    listing = combine_sources([RunsDir(runs), RunsDir(tmp_path / "missing")])()
    assert [run.id for run in listing] == ["exp1"]
    assert [u.path for u in listing.unreadable] == [str(runs / "exp1" / "loop")]


def test_an_unreadable_path_hides_runs_at_above_and_below_it_or_of_its_source() -> None:
    run = Run(id="exp1", dir="/s/group/exp1", source="/s", kind="dir")
    for path in ["/s/group/exp1", "/s/group/exp1/x/loop", "/s/group", "/s", "/"]:
        assert Unreadable(path, "").hides(run), path
    for path in ["/s/group/exp10", "/s/group/exp", "/s/other", "/t", "/s/group/exp1x/a"]:
        assert not Unreadable(path, "").hides(run), path
    remote = Run(id="r", dir="/cache/r", source="s3://bucket", kind="dir")
    assert Unreadable("s3://bucket", "").hides(remote)


def test_a_run_list_is_a_list() -> None:
    run = Run(id="a", dir="/a")
    listing = RunList([run], [Unreadable("/b", "why")])
    assert listing == [run] and isinstance(listing, list)
    assert RunList().unreadable == []


# -- one run at a time: read_run and locate (the monitor's targeted passes) -----


def test_a_guild_home_reads_one_run_as_its_listing_does(fixture_home: Path) -> None:
    home = GuildHome(fixture_home)
    listed = home.list_runs()
    for run in listed:
        assert home.read_run(run.dir) == run
        assert home.locate(os.path.join(run.dir, ".guild", "attrs", "label")) == run.dir
    assert home.watch_root == str(fixture_home / "runs")
    assert home.read_run(str(fixture_home / "runs" / "missing")) is None
    assert home.read_run(str(fixture_home)) is None  # not a run dir of the home
    assert home.locate(str(fixture_home / "runs")) is None
    assert home.locate("/elsewhere/x") is None
    not_yet = fixture_home / "runs" / "new"
    not_yet.mkdir()
    assert home.locate(str(not_yet / "x")) == str(not_yet)
    assert home.read_run(str(not_yet)) is None  # no .guild yet


def test_a_runs_folder_reads_one_run_as_its_listing_does(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    write_files(folder, "exp1/a.txt", "day/r1/a.txt", "day/r1/sub/b.txt", ".hidden/c.txt")
    source = RunsDir(folder)
    listed = {run.dir: run for run in source.list_runs()}
    assert sorted(listed) == [str(folder / "day" / "r1"), str(folder / "exp1")]
    for run_dir, run in listed.items():
        assert source.read_run(run_dir) == run
    assert source.watch_root == str(folder)
    assert source.read_run(str(folder / "day")) is None  # groups runs
    assert source.read_run(str(folder / "day" / "r1" / "sub")) is None  # inside a run
    assert source.read_run(str(folder / ".hidden")) is None
    assert source.locate(str(folder / "day" / "r1" / "sub" / "b.txt")) == str(folder / "day" / "r1")
    assert source.locate(str(folder / "day" / "r2")) is None
    assert source.locate(str(folder / ".hidden" / "c.txt")) is None


def test_a_source_without_read_run_reads_one_run_through_its_listing(fixture_home: Path) -> None:
    class Listing(RunSource):
        path = str(fixture_home)

        def list_runs(self) -> RunList:
            return GuildHome(fixture_home).list_runs()

    (run, *_) = Listing().list_runs()
    assert Listing().read_run(run.dir) == run
    assert Listing().locate(run.dir) is None  # cannot tell: new runs wait for a full pass


def test_a_first_listing_of_many_runs_reads_them_together_and_names_what_it_cannot(
    tmp_path: Path,
) -> None:
    # Enough runs never read for the listing to read them in threads (a cold disk).
    home = GuildHome(tmp_path / "home")
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(80)]
    guild = Path(runs[40], ".guild")
    os.rename(guild, guild.with_name("guild.away"))
    loop(guild)
    expected = runs[::-1]
    expected.remove(runs[40])

    listing = home.list_runs()

    assert [run.dir for run in listing] == expected
    assert [u.path for u in listing.unreadable] == [str(guild)]
    started = home.start_times()
    assert sorted(started, key=started.__getitem__) == [r for r in runs if r != runs[40]]
    assert started[runs[0]] == 1_000


def test_start_times_of_the_newest_read_only_the_runs_changed_last(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "START_CANDIDATES", 2)
    home = GuildHome(tmp_path / "home")
    runs = [write_run(home.path, op="train", started=1_000 + i) for i in range(8)]
    for i, run_dir in enumerate(runs):  # each dir last changed as its run started
        os.utime(run_dir, (1_000 + i, 1_000 + i))

    # 2 newest × 2: the 4 runs changed last are read, the others not.
    assert sorted(home.start_times(newest=2).values()) == [1_004, 1_005, 1_006, 1_007]
    assert len(home.start_times()) == 8  # without newest: every run

    os.utime(runs[0], (5_000, 5_000))  # an old run that wrote a file lately: read too
    os.utime(runs[5], (1_004, 1_004))  # as recent as the 4th: ties are all kept
    assert sorted(home.start_times(newest=2).values()) == [1_000, 1_004, 1_005, 1_006, 1_007]

    for run_dir in runs:  # a copied home: one mtime for every dir, so every run is read
        os.utime(run_dir, (9_000, 9_000))
    assert len(home.start_times(newest=2)) == 8
