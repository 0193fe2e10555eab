"""Temporary log dirs and their removal: a shutdown never waits on a large ``rm``."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_guildimg.engine import processes

from helpers import wait_for


def test_a_tree_is_renamed_away_at_once_and_removed_in_the_background(tmp_path):
    tree = tmp_path / "logdir"
    outside = tmp_path / "run"
    outside.mkdir()
    (outside / "a.png").write_bytes(b"image")
    for number in range(200):
        run = tree / f"run {number}"
        run.mkdir(parents=True)
        (run / "events").write_bytes(b"x" * 100)
        os.symlink(outside / "a.png", run / "a.png")  # as the mirror links run files
    os.symlink(outside, tree / "linked-run")

    removing = processes.remove_tree_soon(str(tree))

    assert removing == str(tree) + processes.REMOVING_SUFFIX
    assert not tree.exists()  # the name is free as soon as the call returns
    tree.mkdir()  # and can be used again while the old tree is being removed
    wait_for(lambda: not Path(removing).exists(), 30, "the background removal")
    # Links were removed, never followed: what they pointed to is untouched.
    assert (outside / "a.png").read_bytes() == b"image"
    assert tree.is_dir()


def test_removing_a_tree_that_is_gone_is_nothing(tmp_path):
    assert processes.remove_tree_soon(str(tmp_path / "gone")) is None
