"""What is watched when no source is given: every conventional source that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_guildimg.engine.runs import GuildHome, RunsDir, default_sources, open_source


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "guild-home"
    monkeypatch.setenv("GUILD_HOME", str(home))
    return home


def test_with_nothing_there_runs_under_the_root_is_watched_until_it_appears(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    assert default_sources(str(root)) == [str(root / "runs")]
    monkeypatch.chdir(tmp_path)
    assert default_sources() == [str(tmp_path / "runs")]  # the current directory
    source = open_source(default_sources(str(root))[0], missing_ok=True)
    assert isinstance(source, RunsDir) and source.list_runs() == []


def test_every_conventional_source_that_exists_is_watched(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "project"
    for name in ("lightning_logs", "outputs", "multirun", "mlruns"):
        (root / name).mkdir(parents=True)
    (root / "runs").write_text("a file named runs is not a folder of runs")
    home.mkdir()

    found = default_sources(str(root))

    assert found == [
        f"guild:{home}",
        str(root / "lightning_logs"),
        str(root / "outputs"),
        str(root / "multirun"),
    ]
    kinds = [type(open_source(text)) for text in found]
    assert kinds == [GuildHome, RunsDir, RunsDir, RunsDir]


def test_a_folder_inside_the_guild_home_is_left_to_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server started in the Guild home: its runs/ are the home's runs.
    home = tmp_path / ".guild"
    (home / "runs").mkdir(parents=True)
    monkeypatch.setenv("GUILD_HOME", str(home))
    assert default_sources(str(home)) == [f"guild:{home}"]
