"""Packaging: the licence and the metadata, and the checkout build's npm step (which
installs from the lock file as it is, and says in one line when npm is missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
import tomllib

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
