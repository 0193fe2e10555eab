"""jupyter_guildimg.guild.project: real run directories, read back through GuildHome."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
import yaml

from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.project import Project, RunFailed, write_run

from helpers import SAMPLES

SAMPLE = SAMPLES / "projects" / "image-summaries"

ECHO_PY = """\
import json, os, sys
names = ("RUN_DIR", "RUN_ID", "GUILD_HOME", "PYTHONPATH", "PYTHONUNBUFFERED")
print(json.dumps({
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "module": os.path.abspath(__file__),
    "env": {name: os.environ.get(name) for name in names},
}))
"""

FAIL_PY = """\
import sys
print("about to fail")
print("boom: bad input", file=sys.stderr)
sys.exit(3)
"""

PYTHON = shlex.quote(sys.executable)

OPS = {
    "train": {
        "description": "prints its arguments",
        "main": "echo",
        "flags": {
            "epochs": 3,
            "lr": {"default": 0.1, "description": "learning rate"},
            "fast": {"default": True},
            "name": "abc",
        },
    },
    "fail": {"main": "fail"},
    "exec-echo": {
        "exec": f"{PYTHON} -m echo --tag=${{name}} ${{flag_args}}",
        "flags": {"name": "x", "n": 2},
    },
    "sleep": {"exec": f"{PYTHON} -c 'import time; time.sleep(60)'"},
    "with-data": {"main": "echo", "requires": [{"file": "data.txt"}, [{"file": "sub/more.txt"}]]},
    "needs-missing": {"main": "echo", "requires": [{"file": "missing.txt"}]},
}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh Guild home as $GUILD_HOME, so no test touches ~/.guild."""
    path = tmp_path / "guild-home"
    monkeypatch.setenv("GUILD_HOME", str(path))
    return path


def make_project(path: Path, ops=None) -> Project:
    path.mkdir(parents=True)
    (path / "guild.yml").write_text(yaml.safe_dump(OPS if ops is None else ops))
    (path / "echo.py").write_text(ECHO_PY)
    (path / "fail.py").write_text(FAIL_PY)
    return Project(path)


@pytest.fixture
def project(tmp_path) -> Project:
    project = make_project(tmp_path / "project")
    (tmp_path / "project" / "data.txt").write_text("a,b\n1,2\n")
    (tmp_path / "project" / "sub").mkdir()
    (tmp_path / "project" / "sub" / "more.txt").write_text("more\n")
    return project


def echoed(output: str) -> dict:
    return json.loads(output)


def manifest(run_dir: str) -> list[list[str]]:
    with open(os.path.join(run_dir, ".guild", "manifest"), encoding="utf-8") as f:
        return [shlex.split(line) for line in f.read().splitlines()]


def attr(run_dir: str, name: str):
    with open(os.path.join(run_dir, ".guild", "attrs", name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def sha1(path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def listed(home) -> dict:
    return {run.id: run for run in GuildHome(home).list_runs()}


# ---------------------------------------------------------------------------
# The sample project


def test_sample_run_holds_links_to_inputs_and_copies_it_made(home):
    run, output = Project(SAMPLE).run_capture("copy-images")

    assert run.status == "completed", output
    assert os.path.dirname(run.dir) == str(home / "runs")
    assert re.fullmatch("[0-9a-f]{32}", run.id)
    assert sorted(os.listdir(run.dir)) == [
        ".guild",
        "favicon-copy.png",
        "favicon.png",
        "heart-copy.jpg",
        "heart.jpg",
    ]
    for name in ("favicon.png", "heart.jpg"):
        link = os.path.join(run.dir, name)
        assert os.path.islink(link)
        assert os.readlink(link) == str(SAMPLE.absolute() / name)
    for name, original in (("favicon-copy.png", "favicon.png"), ("heart-copy.jpg", "heart.jpg")):
        copy = Path(run.dir, name)
        assert copy.is_file() and not copy.is_symlink()
        assert copy.read_bytes() == (SAMPLE / original).read_bytes()
    assert "favicon-copy.png" in output and "heart-copy.jpg" in output
    assert listed(home) == {run.id: run}
    assert (run.operation, run.label, dict(run.flags)) == ("copy-images", "", {})


def test_sample_run_metadata_reads_back(home):
    run = Project(SAMPLE).run("copy-images")
    guildfile = SAMPLE.absolute() / "guild.yml"

    opref = Path(run.dir, ".guild", "opref").read_text()
    assert shlex.split(opref) == [
        f"guildfile:{guildfile}",
        hashlib.md5(guildfile.read_bytes()).hexdigest(),
        "",
        "copy-images",
    ]
    sources = {"copy_images.py", "guild.yml"}
    lines = manifest(run.dir)
    s_lines = [line for line in lines if line[0] == "s"]
    assert {line[1] for line in s_lines} == run.sourcecode
    assert run.sourcecode == {f".guild/sourcecode/{name}" for name in sources}
    for _, path, digest, src in s_lines:
        assert digest == sha1(SAMPLE / src) == sha1(Path(run.dir, path))
    assert sorted(line for line in lines if line[0] == "d") == [
        ["d", "favicon.png", sha1(SAMPLE / "favicon.png"), "file:favicon.png"],
        ["d", "heart.jpg", sha1(SAMPLE / "heart.jpg"), "file:heart.jpg"],
    ]
    assert attr(run.dir, "id") == run.id
    assert attr(run.dir, "exit_status") == 0
    assert attr(run.dir, "cmd") == [sys.executable, "-m", "copy_images"]
    assert re.fullmatch("[0-9a-f]{32}", attr(run.dir, "sourcecode_digest"))
    for name in ("initialized", "started", "stopped"):
        assert isinstance(attr(run.dir, name), int)
    assert attr(run.dir, "initialized") <= attr(run.dir, "started") <= attr(run.dir, "stopped")
    assert not Path(run.dir, ".guild", "LOCK").exists()


# ---------------------------------------------------------------------------
# Flags, labels, commands, environment


def test_flag_defaults_reach_the_program_and_the_run(project):
    run, output = project.run_capture("train")

    argv = echoed(output)["argv"]
    assert argv == ["--epochs", "3", "--fast", "yes", "--lr", "0.1", "--name", "abc"]
    assert run.flags == {"epochs": 3, "lr": 0.1, "fast": True, "name": "abc"}
    types = [type(run.flags[name]) for name in ("epochs", "lr", "fast", "name")]
    assert types == [int, float, bool, str]
    assert run.label == "epochs=3 fast=yes lr=0.1 name=abc"


def test_flag_overrides_reach_the_program_and_the_run(project):
    flags = {"epochs": 10, "lr": 0.005, "fast": False, "name": "two words"}
    run, output = project.run_capture("train", flags)

    argv = echoed(output)["argv"]
    assert argv == ["--epochs", "10", "--fast", "no", "--lr", "0.005", "--name", "two words"]
    assert run.flags == flags
    assert run.label == "epochs=10 fast=no lr=0.005 name='two words'"


def test_explicit_label_wins_over_the_default(project, home):
    labelled = project.run("train", {"epochs": 1}, label="baseline")
    unlabelled = project.run("train", label="")

    runs = listed(home)
    assert runs[labelled.id].label == "baseline"
    assert runs[unlabelled.id].label == ""


def test_exec_substitutes_flag_references_and_flag_args(project):
    run, output = project.run_capture("exec-echo", {"n": 5})

    args = ["--tag=x", "--n", "5", "--name", "x"]
    assert echoed(output)["argv"] == args
    assert attr(run.dir, "cmd") == [sys.executable, "-m", "echo", *args]


def test_program_runs_in_the_run_dir_from_copied_source(project, home):
    run, output = project.run_capture("train")

    seen = echoed(output)
    sourcecode = os.path.join(run.dir, ".guild", "sourcecode")
    assert os.path.samefile(seen["cwd"], run.dir)
    assert seen["module"] == os.path.join(sourcecode, "echo.py")
    env = seen["env"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == sourcecode
    assert (env["RUN_DIR"], env["RUN_ID"], env["GUILD_HOME"]) == (run.dir, run.id, str(home))
    assert env["PYTHONUNBUFFERED"] == "1"


# ---------------------------------------------------------------------------
# Status and times


def test_completed_run_times_are_ordered(project):
    before = time.time()
    run = project.run("train")
    after = time.time()

    assert run.status == "completed"
    assert before - 1e-3 <= run.started <= run.stopped <= after


def test_failing_run_raises_with_output_and_is_listed_as_error(project, home):
    with pytest.raises(RunFailed) as failed:
        project.run("fail")

    run = failed.value.run
    assert run.status == "error"
    assert "about to fail" in failed.value.output and "boom: bad input" in failed.value.output
    assert "boom: bad input" in str(failed.value)
    assert attr(run.dir, "exit_status") == 3
    assert listed(home)[run.id].status == "error"


def test_run_capture_does_not_raise_for_a_failing_run(project):
    run, output = project.run_capture("fail")

    assert run.status == "error"
    assert "boom: bad input" in output


def test_started_op_is_running_then_terminated(project, home):
    running = project.start("sleep")
    try:
        lock = Path(running.run_dir, ".guild", "LOCK")
        assert lock.read_text() == str(running.process.pid)
        assert [(run.id, run.status) for run in GuildHome(home).list_runs()] == [
            (running.run_id, "running")
        ]
        assert running.run.stopped is None
    finally:
        run = running.terminate()

    assert run.status == "terminated"
    assert attr(run.dir, "exit_status") < 0
    assert not lock.exists()
    assert run.started <= run.stopped
    assert GuildHome(home).list_runs() == [run]


def test_wait_returns_the_finished_run(project):
    running = project.start("train", {"epochs": 7})
    run = running.wait(timeout=60)

    assert (run.id, run.status, run.flags["epochs"]) == (running.run_id, "completed", 7)


# ---------------------------------------------------------------------------
# Required files and source code


def test_required_files_are_links_and_not_source_code(project, tmp_path):
    run = project.run("with-data")

    root = tmp_path / "project"
    for name in ("data.txt", "sub/more.txt"):
        link = Path(run.dir, name)
        assert link.is_symlink() and os.readlink(link) == str(root / name)
    assert sorted(os.listdir(run.dir)) == [".guild", "data.txt", "sub"]
    assert run.sourcecode == {
        ".guild/sourcecode/echo.py",
        ".guild/sourcecode/fail.py",
        ".guild/sourcecode/guild.yml",
    }
    assert sorted(line for line in manifest(run.dir) if line[0] == "d") == [
        ["d", "data.txt", sha1(root / "data.txt"), "file:data.txt"],
        ["d", "sub/more.txt", sha1(root / "sub/more.txt"), "file:sub/more.txt"],
    ]


def test_missing_required_file_fails_before_any_run_exists(project, home):
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        project.start("needs-missing")

    assert GuildHome(home).list_runs() == []


def test_unknown_operation_names_the_available_ones(project, home):
    with pytest.raises(ValueError, match=r"'nope'.*exec-echo, fail, needs-missing, sleep, train"):
        project.run("nope")
    assert GuildHome(home).list_runs() == []


def test_unknown_flag_is_an_error(project, home):
    with pytest.raises(ValueError, match=r"epochz.*epochs"):
        project.run("train", {"epochz": 1})
    assert GuildHome(home).list_runs() == []


def test_source_code_selection(tmp_path):
    root = tmp_path / "project"
    make_project(root, {"train": {"main": "echo"}})
    inside_home = root / "inside-home"
    project = Project(root, home=inside_home)
    files = {
        "pkg/mod.py": "x = 1\n",
        "conf/settings.toml": "a = 1\n",
        "notes.md": "not source\n",
        "big.txt": "x" * (1024 * 1024),
        ".venv/lib.py": "hidden\n",
        "pkg/__pycache__/mod.py": "cache\n",
        "old-home/runs/keep.py": "runs of another home\n",
        "old-home/util.py": "beside runs\n",
        "inside-home/stray.py": "in the home of this project\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    run = project.run("train")

    expected = {"guild.yml", "echo.py", "fail.py", "pkg/mod.py", "conf/settings.toml"}
    assert run.sourcecode == {f".guild/sourcecode/{name}" for name in expected}
    assert Path(run.dir, ".guild/sourcecode/pkg/mod.py").read_text() == "x = 1\n"
    assert os.path.dirname(run.dir) == str(inside_home / "runs")


# ---------------------------------------------------------------------------
# write_run and listing


def test_write_run_is_listed_like_a_real_run(home):
    run_dir = write_run(
        home,
        op="train",
        flags={"lr": 0.1, "fast": True},
        started=1_700_000_000.25,
        stopped=1_700_000_010.5,
        files={"images/a.png": b"png bytes"},
        sourcecode={"train.py": b"print('hi')\n"},
    )

    (run,) = GuildHome(home).list_runs()
    assert run.dir == run_dir
    assert (run.operation, run.status, run.label) == ("train", "completed", "fast=yes lr=0.1")
    assert (run.started, run.stopped) == (1_700_000_000.25, 1_700_000_010.5)
    assert run.flags == {"lr": 0.1, "fast": True}
    assert run.sourcecode == {".guild/sourcecode/train.py"}
    assert Path(run_dir, "images", "a.png").read_bytes() == b"png bytes"
    assert sorted(os.listdir(run_dir)) == [".guild", "images"]


def test_write_run_statuses_labels_and_order(home):
    ids = {}
    for started, (exit_status, label) in enumerate(
        [(0, None), (1, "bad"), (-15, None), (None, "killed")], start=1000
    ):
        run_dir = write_run(home, op="op", exit_status=exit_status, label=label, started=started)
        ids[os.path.basename(run_dir)] = exit_status

    runs = GuildHome(home).list_runs()
    assert [(ids[run.id], run.status, run.label) for run in runs] == [
        (None, "error", "killed"),
        (-15, "terminated", ""),
        (1, "error", "bad"),
        (0, "completed", ""),
    ]
    assert [run.started for run in runs] == [1003.0, 1002.0, 1001.0, 1000.0]


def test_a_label_that_looks_like_a_negative_number_reads_back(home):
    write_run(home, op="train", label="--5")

    assert [run.label for run in GuildHome(home).list_runs()] == ["--5"]


def test_list_runs_only_lists_the_projects_own_runs(tmp_path, home):
    a = make_project(tmp_path / "a")
    b = make_project(tmp_path / "b")
    first = a.run("train")
    b.run("train")
    second = a.run("train")
    written = write_run(home, op="train", project_path=a.guildfile, started=time.time() + 60)
    write_run(home, op="train")

    assert len(GuildHome(home).list_runs()) == 5
    assert [run.id for run in a.list_runs()] == [os.path.basename(written), second.id, first.id]
    assert len(b.list_runs()) == 1


def test_home_is_resolved_when_running(project, tmp_path, monkeypatch):
    other = tmp_path / "other-home"
    monkeypatch.setenv("GUILD_HOME", str(other))

    run = project.run("train")

    assert os.path.dirname(run.dir) == str(other / "runs")
    assert [r.id for r in project.list_runs()] == [run.id]
