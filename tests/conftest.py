"""Shared fixtures: an isolated Guild home for every test, the monitor tests' ``home``
and ``logdir``, the helpers the spec doctest (tests/image-summaries.md) uses, and
the browser tests' Jupyter servers and Chromium. Plain helper functions are in
helpers.py and browser.py."""

from __future__ import annotations

import os
import pprint
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg.engine.runs import GuildHome
from jupyter_guildimg.guild.project import Project

import browser
from helpers import SAMPLES
from seaweedfs import SeaweedFS


@pytest.fixture(autouse=True)
def guild_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own Guild home: nothing ever touches ~/.guild."""
    home = tmp_path_factory.mktemp("guild-home")
    monkeypatch.setenv("GUILD_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3-compatible server (SeaweedFS) on 127.0.0.1, for the object-store
    tests; each test makes its own bucket."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
def jp_server_config(guild_home: Path, request: pytest.FixtureRequest) -> dict[str, object]:
    """A real Jupyter server (pytest-jupyter) with the extension on the test's home;
    its monitor in a process of its own, as users get it, unless the test is marked
    ``monitor_in_server``."""
    in_server = request.node.get_closest_marker("monitor_in_server") is not None
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
        "GuildImgApp": {
            "sources": [str(guild_home)],
            "interval": 0.5,
            "monitor_process": not in_server,
        },
    }


@pytest.fixture
def server_monitor(guildimg: Any) -> Any:
    """The test server's RunsMonitor, in its own threads (a ``monitor_in_server`` test)."""
    return guildimg.runtime.monitor.service.monitor


@pytest.fixture
def guildimg(jp_serverapp: Any) -> Iterator[Any]:
    """The extension app of the test server. The server's runtime file is written, as
    a real server writes it at start: kernels read the token from it."""
    jp_serverapp.write_server_info_file()
    yield jp_serverapp.web_app.settings["jupyter_guildimg"]
    jp_serverapp.remove_server_info_file()


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No server is found unless a test names one: neither the environment a test
    server may have exported nor a Jupyter server running on this machine. The
    kernel-wide shared backend is closed afterwards."""
    from jupyter_guildimg.notebook.client import ENV_TOKEN, ENV_URL, close_shared_backend

    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-servers"))
    yield
    close_shared_backend()


@pytest.fixture
def lab(tmp_path: Path, guild_home: Path) -> Iterator[browser.Lab]:
    """``jupyter lab`` with the extension on the test's Guild home."""
    with browser.jupyter("lab", tmp_path, guild_home) as server:
        yield server


@pytest.fixture
def notebook7(tmp_path: Path, guild_home: Path) -> Iterator[browser.Lab]:
    """``jupyter notebook`` (Notebook 7) with the extension on the test's Guild home."""
    with browser.jupyter("notebook", tmp_path, guild_home) as server:
        yield server


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, for fixtures that act on a failure."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def chromium(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[browser.Browser]:
    """A page of headless Chromium collecting its page and console errors. When the
    test fails: a screenshot, test-output/<test name>-failure.png, and the errors."""
    with browser.chromium(tmp_path / "chromium-profile") as session:
        yield session
        report = request.node.stash.get(_REPORTS, {}).get("call")
        if report is None or report.failed:
            name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
            print(f"screenshot: {browser.screenshot(session.page, f'{name}-failure')}")
            print(f"page errors: {session.errors}\nconsole errors: {session.console_errors}")
