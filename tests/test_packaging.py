"""Packaging: the licence and the metadata, the checkout build's npm step (which
installs from the lock file as it is, and says in one line when npm is missing), and
the sdist and wheel a release builds."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from scripts.guildimg_npm_build import build  # noqa: E402  (a build script, not a package)


def test_the_licence_is_bsd_3_clause_and_declared_for_wheel_and_sdist():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "jupyter_guildimg developers" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    meta = project["project"]
    assert meta["license"] == "BSD-3-Clause" and meta["license-files"] == ["LICENSE"]
    assert meta["authors"] == [{"name": "jupyter_guildimg developers"}]
    assert "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt" in meta["classifiers"]
    sdist = project["tool"]["hatch"]["build"]["targets"]["sdist"]
    assert not any("LICENSE" in pattern for pattern in sdist.get("exclude", []))


def test_a_checkout_build_without_npm_stops_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    monkeypatch.delenv("HATCH_JUPYTER_BUILDER_SKIP_NPM", raising=False)
    with pytest.raises(SystemExit) as stopped:
        build("wheel", "standard", path=str(REPO / "labextension"))
    message = str(stopped.value.code)
    assert "\n" not in message and "needs Node.js and npm" in message


def test_the_npm_step_installs_from_the_lock_file_as_it_is():
    source = (REPO / "scripts" / "guildimg_npm_build.py").read_text()
    assert '"ci"' in source and '"install"' not in source
    hook = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert hook["hooks"]["jupyter-builder"]["build-function"] == "scripts.guildimg_npm_build.build"


def test_the_sdist_and_the_wheel_built_from_it_carry_the_licence_and_the_extension(tmp_path):
    """What ``python -m build`` makes, as a release would: the sdist, then the wheel
    built from that sdist on a machine without Node.js (npm is not on the PATH)."""
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare)}
    env.pop("HATCH_JUPYTER_BUILDER_SKIP_NPM", None)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")

    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "PKG-INFO", "pyproject.toml"} <= names
    built_extension = {n for n in names if n.startswith("jupyter_guildimg/labextension/")}
    assert "jupyter_guildimg/labextension/static/style.js" in built_extension
    assert not any("node_modules" in name for name in names)

    with zipfile.ZipFile(wheel) as archive:
        wheel_names = set(archive.namelist())
        (metadata,) = [n for n in wheel_names if n.endswith(".dist-info/METADATA")]
        meta = archive.read(metadata).decode()
    data = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.data/data/"
    labext = data + "share/jupyter/labextensions/jupyter-guildimg/"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel_names)
    assert {labext + "package.json", labext + "install.json", labext + "static/style.js"} <= (
        wheel_names
    )
    assert data + "etc/jupyter/jupyter_server_config.d/jupyter_guildimg.json" in wheel_names
    assert "jupyter_guildimg/py.typed" in wheel_names
    assert "License-Expression: BSD-3-Clause" in meta
    assert "Classifier: Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt" in meta
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in wheel_names)
