"""What the real-browser tests share: a Jupyter server of their own (``jupyter lab``
or ``jupyter notebook``) with the extension watching the test's Guild home, and
headless Chromium (Debian's ``chromium``, driven by Playwright; it never downloads
a browser of its own) with every page error collected. The fixtures that use these
are in conftest.py; screenshots go to test-output/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import TESTS

REPO = TESTS.parent
OUTPUT = REPO / "test-output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No GPU, sandbox or first-run UI in a container; and no background connections:
# this machine's network is closed, and refused connections only slow Chromium down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1100}


@dataclass
class Lab:
    """A running Jupyter server (JupyterLab or Notebook 7) and its root directory."""

    url: str
    token: str
    root: Path
    log: Path

    def page_url(self, path: str) -> str:
        """``path`` (e.g. ``/lab``) on this server, logged in with its token."""
        return f"{self.url}{path}?token={self.token}"

    def get(self, path: str) -> Any:
        """``GET <path>`` (e.g. ``/api/status``) on this server: its JSON answer, decoded."""
        separator = "&" if "?" in path else "?"
        request = f"{self.url}{path}{separator}token={self.token}"
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def api(self, path: str) -> Any:
        """``GET <base_url>guildimg/api/<path>``: the extension's answer, decoded."""
        return self.get(f"/guildimg/api/{path}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl+C would: the server shuts its kernels, TensorBoard and
    monitor down. SIGKILL for its whole process group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def jupyter(app: str, tmp_path: Path, guild_home: Path, extra_config: str = "") -> Iterator[Lab]:
    """``jupyter <app>`` (``lab`` or ``notebook``) on a free port with the extension
    watching ``guild_home``, an empty root directory, and every Jupyter directory
    (config, data, runtime, Lab settings and workspaces) its own. ``extra_config``:
    more lines for its config file."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "jupyter"
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "Would you like to get notified about official Jupyter news?" popup.
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    config = home / f"jupyter_{app}_test_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{'guild:' + str(guild_home)!r}]\n"
        # No network: Lab must not look for updates or news.
        "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
        "c.LabApp.news_url = None\n"
        # window.jupyterapp: Notebook 7 has no other way in for the sidebar's command.
        "c.JupyterNotebookApp.expose_app_in_browser = True\n" + extra_config
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_GUILDIMG_")}
    env.update(
        GUILD_HOME=str(guild_home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    port = free_port()
    token = os.urandom(16).hex()
    command = [
        sys.executable, "-m", "jupyter", app, "--no-browser",
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}", f"--config={config}",
        f"--IdentityProvider.token={token}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    log = tmp_path / f"jupyter-{app}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{url}/api/status?token={token}"):
            assert process.poll() is None, f"jupyter {app} exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"jupyter {app} did not answer:\n{log.read_text()}"
            time.sleep(0.25)
        yield Lab(url, token, root, log)
    finally:
        stop(process)
        print(f"--- end of {log}:\n{log.read_text()[-6000:]}")


@dataclass
class Browser:
    """A Chromium page and what went wrong in it: uncaught page errors (with their
    stacks) and the console's error messages."""

    page: Any  # playwright.sync_api.Page
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def chromium(profile: Path) -> Iterator[Browser]:
    """A page of a fresh headless Chromium (persistent profile in ``profile``)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's Chromium is missing: apt-get install -y chromium (scripts/test does)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            browser = Browser(context.new_page())

            def on_console(message: Any) -> None:
                if message.type == "error":
                    browser.console_errors.append(message.text)

            browser.page.on(
                "pageerror", lambda error: browser.errors.append(error.stack or str(error))
            )
            browser.page.on("console", on_console)
            yield browser
        finally:
            context.close()


def screenshot(page: Any, name: str, scroll_to: str | None = None) -> Path:
    """The page as test-output/<name>.png, scrolled to ``scroll_to`` (a selector)
    when that is on the page."""
    OUTPUT.mkdir(exist_ok=True)
    if scroll_to:
        target = page.locator(scroll_to).first
        if target.count():
            target.scroll_into_view_if_needed()
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def all_loaded(page: Any, selector: str, timeout: float = 30_000) -> None:
    """Wait until there are images matching ``selector`` and every one has its
    picture (not a broken or empty image)."""
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=selector,
        timeout=timeout,
    )
