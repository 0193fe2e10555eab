"""``guildimg demo``: make demo runs in a Guild home of their own, then serve them
with JupyterLab (else a bare Jupyter server), the extension on, TensorBoard
started and a live run training meanwhile, until Ctrl+C; with ``--once``, capture
their images once into a log dir and print them instead. Also the demo server's
config file, its JupyterLab defaults and what it prints."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import threading

from .. import rest
from ..engine.monitor import RunsMonitor
from ..engine.runs import open_source
from ..guild.demo import start_live_run

__all__ = ["DEMO_LAB_SETTINGS", "demo_command"]


def demo_command(args: argparse.Namespace) -> int:
    from ..guild.demo import make_demo_runs

    home = os.path.abspath(args.home)
    if args.fresh or not os.path.isdir(os.path.join(home, "runs")):
        print(f"Making {args.runs} demo runs in the Guild home {home} ...")
        make_demo_runs(home, args.runs)
    if not args.once:
        return _serve_demo(home, args.port, args.live_epochs, args.epoch_seconds)
    logdir = os.path.abspath(args.logdir or os.path.join(home, "..", "logdir"))
    monitor = RunsMonitor(logdir, open_source(f"guild:{home}").list_runs)
    report = monitor.run_pass()
    print(f"\nThe monitor captured {len(report.written)} image(s) from {report.runs} run(s):")
    for name, path in report.written:
        print(f"  {name}  {path}")
    for problem in report.problems:
        print(f"  problem: {problem.run} {problem.path} {problem.message}")
    print(f"\nLog dir: {logdir}\nSee it with:  tensorboard --logdir '{logdir}'")
    return 0 if report.runs else 1


def _serve_demo(home: str, port: int, live_epochs: int, epoch_seconds: float) -> int:
    """JupyterLab (else a bare Jupyter server) on the demo runs, the extension on,
    TensorBoard started, and a live run training ``live_epochs`` epochs of
    ``epoch_seconds`` each meanwhile (none for 0), stopped with the server."""
    # JupyterLab is an optional extra: without it the demo still serves the API
    # and TensorBoard, and says how to get the sidebar.
    lab = importlib.util.find_spec("jupyterlab") is not None
    token = secrets.token_hex(16)
    root = os.path.dirname(home)
    config = os.path.join(root, "jupyter_guildimg_demo_config.py")
    with open(config, "w", encoding="utf-8") as f:
        f.write(_demo_config(home, lab))
    env = dict(os.environ)
    if lab:
        # JupyterLab 4 asks about news in a toast until the setting is answered, whatever
        # news_url says: answer it in the demo's defaults (the user's own settings win).
        config_dir = _demo_lab_defaults(root)
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [config_dir, *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]
        )
    command = [
        sys.executable, "-m", "jupyter", "lab" if lab else "server", "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
        f"--config={config}", f"--IdentityProvider.token={token}",
        # Jupyter refuses root unless told; containers and CI machines often are root.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    print(_demo_message(f"http://127.0.0.1:{port}", token, lab), flush=True)
    # Its own session, and SIGTERM from us: Jupyter's SIGINT handler asks for
    # confirmation on a terminal and, without one, can end without stopping its
    # extensions (and so TensorBoard). SIGTERM always shuts it down cleanly.
    server = subprocess.Popen(command, start_new_session=True, env=env)
    live = start_live_run(home, live_epochs, epoch_seconds) if live_epochs > 0 else None
    if live is not None:
        print(
            f"A live run ({live.run_id[:8]}) trains for {live_epochs} epochs of"
            f" {epoch_seconds:g} s, redrawing its samples.png each epoch.",
            flush=True,
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set() and server.poll() is None:
        stop.wait(0.5)
        if live is not None and live.process.poll() is not None:
            live.wait()  # records how it ended, as Guild does
            live = None
    if live is not None:
        live.terminate()
    if server.poll() is None:
        print("\nStopping Jupyter ...", flush=True)
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


def _demo_config(home: str, lab: bool) -> str:
    """The demo server's config file: the extension on, the demo home its source."""
    config = (
        "c.ServerApp.jpserver_extensions = {'jupyter_guildimg': True}\n"
        f"c.GuildImgApp.sources = [{'guild:' + home!r}]\n"
        "c.GuildImgApp.tensorboard_autostart = True\n"
    )
    if lab:
        # No network is assumed: JupyterLab would otherwise fetch news and check
        # PyPI for updates, and show a notification asking about it.
        config += (
            "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
            "c.LabApp.news_url = None\n"
        )
    return config


#: JupyterLab settings the demo changes: no news prompt, no update check (no network).
DEMO_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}


def _demo_lab_defaults(root: str) -> str:
    """A Jupyter config dir under ``root`` whose ``labconfig`` gives JupyterLab the
    defaults of :data:`DEMO_LAB_SETTINGS`; returns its path."""
    config_dir = os.path.join(root, "jupyter-config")
    os.makedirs(os.path.join(config_dir, "labconfig"), exist_ok=True)
    path = os.path.join(config_dir, "labconfig", "default_setting_overrides.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(DEMO_LAB_SETTINGS, f, indent=2)
    return config_dir


def _demo_message(base: str, token: str, lab: bool) -> str:
    """What the demo prints: the URL to open, where to click, the direct URLs."""
    direct = (
        f"  TensorBoard  {base}/{rest.TENSORBOARD_PREFIX}/?token={token}\n"
        f"  Runs (API)   {base}/{rest.API_PREFIX}/{rest.RUNS}?token={token}\n"
    )
    stop = "Ctrl+C stops the server, its TensorBoard and the monitor.\n"
    if not lab:
        return (
            "\nJupyterLab is not installed, so this is a plain Jupyter server without"
            " the Guild Images sidebar; pip install 'jupyter_guildimg[lab]' adds it.\n"
            f"Starting Jupyter with the demo runs. Open:\n{direct}"
            f"  Jupyter      {base}/?token={token}\n{stop}"
        )
    return (
        "\nStarting JupyterLab with the demo runs. Open:\n"
        f"  {base}/lab?token={token}\n"
        "then click Guild Images (the picture-frame icon) in the left sidebar for the\n"
        "runs and their images, and Open TensorBoard there (or the command palette:\n"
        '"Guild Images: Open TensorBoard"). Directly:\n'
        f"{direct}{stop}"
    )
