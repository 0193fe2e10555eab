"""Run names: safe as one path component and in TensorBoard's run selector, unique,
and independent of the order runs are listed in."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.naming import MAX_NAME_BYTES, assign_names, safe_name
from jupyter_guildimg.engine.runs import Run, RunsDir
from jupyter_guildimg.guild.project import write_run

from helpers import png, run_logdir, summaries


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


# -- safe_name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plain name", "plain name"),
        ("a/b\\c", "a_b_c"),
        ("dots…", "dots?"),
        ("tab\tnew\nline\r", "tab new line"),
        ("bell\x07nul\x00del\x7f", "bell nul del"),
        ("  spaced   out  ", "spaced out"),
        (".hidden", "_hidden"),
        ("..", "_."),
        ("ünïcødé ✓", "ünïcødé ✓"),
        ("", "_"),
        ("\x00\x1f", "_"),
        ("   ", "_"),
    ],
)
def test_safe_name(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    "char",
    [
        "\u061c",  # Arabic letter mark
        "\u200e",  # left-to-right mark
        "\u200f",  # right-to-left mark
        *(chr(c) for c in range(0x202A, 0x202F)),  # embeddings, overrides, pop
        *(chr(c) for c in range(0x2066, 0x206A)),  # isolates
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
        "\ufeff",  # zero-width no-break space
        "\u00ad",  # soft hyphen
        "\U000e0041",  # tag latin capital letter a
    ],
)
def test_safe_name_strips_bidi_controls_and_invisible_format_characters(char):
    assert safe_name(f"run{char}1 gnp.exe{char}") == "run1 gnp.exe"


def test_a_right_to_left_override_cannot_make_one_name_look_like_another():
    # Shown as "train cod.exe" if the override were kept.
    assert safe_name("train \u202eexe.doc") == "train exe.doc"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("csi\x9b31m", "csi 31m"),  # C1 control: a terminal's CSI
        ("nel\x85x", "nel x"),
        ("bytes\udcff\udcfe", "bytes??"),  # undecodable bytes of a file name
        ("line\u2028sep", "line sep"),
        ("e\u0301 ✓ 😀", "e\u0301 ✓ 😀"),  # combining marks and symbols stay
    ],
)
def test_safe_name_other_controls(name, expected):
    safe = safe_name(name)
    assert safe == expected
    safe.encode("utf-8")  # always valid UTF-8


def test_safe_name_keeps_a_name_of_exactly_the_cap():
    name = "x" * MAX_NAME_BYTES
    assert safe_name(name) == name


@pytest.mark.parametrize("char", ["x", "é", "✓", "😀"])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_safe_name_caps_the_bytes_without_splitting_a_character(char, offset):
    name = "a" * offset + char * 300
    safe = safe_name(name)
    assert safe.endswith("~")
    kept = safe[:-1]
    assert name.startswith(kept)
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES  # the "~" included
    # Only the part of a character that would not fit is dropped.
    assert len(kept.encode("utf-8")) > MAX_NAME_BYTES - 1 - len(char.encode("utf-8"))
    assert "\ufffd" not in safe


# -- assign_names ------------------------------------------------------------


def _run(i: int, label: str) -> Run:
    run_id = f"{i:032x}"
    return Run(id=run_id, dir=f"/runs/{run_id}", label=label)


def test_assign_names_makes_colliding_names_distinct():
    runs = [_run(i, label) for i, label in enumerate(["a", "a", "a", "b", "c", "c", "d/e"])]

    names = assign_names(runs, lambda r: r.label)

    assert sorted(names) == sorted(r.dir for r in runs)
    assert len(set(names.values())) == len(runs)
    by_label = {r.dir: r.label for r in runs}
    for run_dir, name in names.items():
        if by_label[run_dir] in ("b", "d/e"):
            assert name == safe_name(by_label[run_dir])
        else:
            assert re.fullmatch(rf"{by_label[run_dir]} ~[0-9a-f]{{6}}", name)


def test_assign_names_does_not_depend_on_the_order_of_runs():
    runs = [_run(i, ["same", "same", "other", "same", "x", "x"][i % 6]) for i in range(30)]
    expected = assign_names(runs, lambda r: r.label)
    assert len(set(expected.values())) == len(runs)

    rng = random.Random(1234)
    for _ in range(20):
        shuffled = list(runs)
        rng.shuffle(shuffled)
        assert assign_names(shuffled, lambda r: r.label) == expected
        assert assign_names(reversed(shuffled), lambda r: r.label) == expected


def test_assign_names_lengthens_a_suffix_that_would_take_another_runs_name():
    first, second = _run(1, "n"), _run(2, "n")
    names = assign_names([first, second], lambda r: r.label)
    # A third run whose own name is what ``first`` would get.
    squatter = _run(3, names[first.dir])

    for order in ([first, second, squatter], [squatter, second, first]):
        again = assign_names(order, lambda r: r.label)
        assert again[squatter.dir] == names[first.dir]
        assert again[first.dir].startswith(names[first.dir])
        assert len(again[first.dir]) == len(names[first.dir]) + 2
        assert again[second.dir] == names[second.dir]


def test_a_run_folder_whose_name_is_not_utf8_is_monitored(tmp_path, logdir):
    run = os.path.join(os.fsencode(tmp_path), b"runs", b"exp\xff")
    os.makedirs(run)
    Path(os.fsdecode(run), "a.png").write_bytes(png())

    report = RunsMonitor(logdir, RunsDir(tmp_path / "runs").list_runs).run_pass()

    assert report.problems == [] and [p for _, p in report.written] == ["a.png"]
    assert os.listdir(logdir) == ["exp?"]
