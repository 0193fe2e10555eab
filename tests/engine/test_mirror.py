"""The log dir mirrors each run: links to its files (not its source code or Guild's
internals), kept in step as files, directories and runs go away."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.project import write_run

from helpers import RESOURCES, png, run_logdir, tags


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


def test_real_guild_runs_are_mirrored_without_their_source_code(tmp_path, logdir):
    # Made by Guild 0.9 itself (tests/resources/make_guild_home.sh), which copies
    # source code to the run root and lists it in .guild/manifest.
    home = tmp_path / "home"
    shutil.copytree(RESOURCES / "guild-home", home, symlinks=True)
    source = GuildHome(home)

    RunsMonitor(logdir, source.list_runs).run_once()

    expected = json.loads((RESOURCES / "guild-home" / "EXPECTED.json").read_text())["runs"]
    for run, want in zip(source.list_runs(), expected, strict=True):
        mirror = run_logdir(logdir, run.dir)
        linked = {
            os.path.relpath(os.path.join(d, n), mirror)
            for d, _, names in os.walk(mirror)
            for n in names
            if os.path.islink(os.path.join(d, n))
        }
        assert want["sourcecode"] and not linked & set(want["sourcecode"])
        images = {"sample.png", "samples/x.png"} & linked
        assert sorted(images) == (tags(logdir, run.dir) if images else [])


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


def test_symlinked_images_are_mirrored_but_not_summarized(home, logdir, tmp_path):
    source = tmp_path / "input.png"
    source.write_bytes(png())
    run_dir = write_run(home.path, op="a", files={"out.png": png()})
    os.symlink(source, os.path.join(run_dir, "input.png"))

    RunsMonitor(logdir, home.list_runs).run_once()

    assert os.path.islink(os.path.join(run_logdir(logdir, run_dir), "input.png"))
    assert tags(logdir, run_dir) == ["out.png"]


DEEP = "d" * 250


def _deeper_than_path_max(root: str) -> None:
    """Directories nested under ``root`` past PATH_MAX (made one level at a time
    through descriptors), so paths to the deepest cannot be used, even by root."""
    name = DEEP
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("x.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_directory_out_of_reach_is_reported_once_and_the_rest_mirrored(home, logdir):
    run_dir = write_run(home.path, op="a", files={"a.png": png()})
    _deeper_than_path_max(run_dir)
    monitor = RunsMonitor(logdir, home.list_runs)
    try:
        reports = [monitor.run_pass() for _ in range(3)]
    finally:
        shutil.rmtree(run_dir)  # descriptor-based: handles the depth

    assert [p for _, p in reports[0].written] == ["a.png"]
    # The first level whose path (in the run or in the mirror) is too long.
    ((path, message),) = [(p.path, p.message) for r in reports for p in r.problems]
    assert set(path.split("/")) == {DEEP}
    assert message == "directory not mirrored: File name too long; kept as last seen"


def test_a_link_that_fails_in_the_runs_top_directory_loses_no_image(home, tmp_path):
    # The scan raises (the pass reports the run's problem); the images listed beside
    # the failed link are taken by the next scan that succeeds, none lost.
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    logdir = str(tmp_path)
    while len(logdir) < path_max - 200:
        logdir = os.path.join(logdir, "l" * min(250, path_max - 200 - len(logdir)))
    files = {f"img-{i:02d}.png": png() for i in range(20)}
    files["x" * 250 + ".txt"] = b"its path in the mirror is too long"
    run_dir = write_run(home.path, op="a", files=files)
    monitor = RunsMonitor(logdir, home.list_runs)
    failed = [monitor.run_pass() for _ in range(2)]
    os.unlink(os.path.join(run_dir, "x" * 250 + ".txt"))
    recovered = monitor.run_pass()

    for report in failed:
        assert report.written == []
        (problem,) = report.problems
        assert problem.message.startswith("pass failed: OSError: [Errno 36] File name too long")
    assert sorted(p for _, p in recovered.written) == sorted(files)[:20]
    assert recovered.problems == []
    monitor.close()
