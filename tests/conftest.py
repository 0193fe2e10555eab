"""Shared fixtures: an isolated Guild home for every test, the monitor tests' ``home``
and ``logdir``, and the helpers the spec doctest (tests/image-summaries.md) uses.
Plain helper functions are in helpers.py."""

from __future__ import annotations

import os
import pprint
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg.project import Project
from jupyter_guildimg.runs import GuildHome

from helpers import SAMPLES


@pytest.fixture(autouse=True)
def guild_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own Guild home: nothing ever touches ~/.guild."""
    home = tmp_path_factory.mktemp("guild-home")
    monkeypatch.setenv("GUILD_HOME", str(home))
    return home


@pytest.fixture
def home(guild_home: Path) -> GuildHome:
    """The test's Guild home as a run source."""
    return GuildHome(guild_home)


@pytest.fixture
def logdir(tmp_path: Path) -> str:
    """A log dir for the monitor (not made yet)."""
    return str(tmp_path / "logdir")


def sample(*parts: str) -> str:
    return str(SAMPLES.joinpath(*parts))


def findl(root: str) -> list[str]:
    """Every file under ``root`` (symlinks to files included), relative, sorted."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        found.extend(os.path.relpath(os.path.join(dirpath, n), root) for n in filenames)
    return sorted(found)


def touch(path: str) -> None:
    os.utime(path)


@pytest.fixture(autouse=True)
def _spec_namespace(
    doctest_namespace: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    mkdtemp: Callable[[], str] = lambda: str(tmp_path_factory.mktemp("logdir"))  # noqa: E731
    doctest_namespace.update(
        Project=Project,
        sample=sample,
        dir=lambda path: sorted(os.listdir(path)),
        path=os.path.join,
        findl=findl,
        mkdtemp=mkdtemp,
        touch=touch,
        pprint=pprint.pprint,
        dirname=os.path.dirname,
        os=os,
    )


@pytest.fixture
def jp_server_config(guild_home: Path) -> dict[str, object]:
    """A real Jupyter server (pytest-jupyter) with the extension on the test's home."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
        "GuildImgApp": {"sources": [str(guild_home)], "interval": 0.5},
    }


@pytest.fixture
def guildimg(jp_serverapp: Any) -> Any:
    """The extension app of the test server."""
    return jp_serverapp.web_app.settings["guildimg"]


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No server is found unless a test names one: neither the environment a test
    server may have exported nor a Jupyter server running on this machine. The
    kernel-wide shared backend is closed afterwards."""
    from jupyter_guildimg.client import ENV_TOKEN, ENV_URL, close_shared_backend

    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-servers"))
    yield
    close_shared_backend()
