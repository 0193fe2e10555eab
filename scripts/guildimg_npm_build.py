"""The frontend build that ``pip install`` / ``python -m build`` runs from a checkout
(hatch-jupyter-builder calls :func:`build`, named in pyproject.toml).

hatch-jupyter-builder's own ``npm_builder`` always runs ``npm install``, which
rewrites ``labextension/package-lock.json`` (npm adds the optional packages of the
platform at hand). This one installs exactly what the lock file says (``npm ci``, which
never writes it), and only when ``node_modules`` is missing or older than the lock
file; then it runs the build script. Without npm it stops with one line saying what
is needed: the wheel and the sdist carry the built extension and need no Node.js.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["build"]

_NO_NPM = (
    "jupyter_guildimg: building from a checkout needs Node.js and npm for the JupyterLab"
    " extension (https://nodejs.org); the wheel and the sdist do not."
)


def _newer(target: Path, sources: list[Path]) -> bool:
    """Whether ``target`` exists and is newer than every file of ``sources`` (a file,
    or a directory searched recursively)."""
    if not target.exists():
        return False
    built = target.stat().st_mtime
    for source in sources:
        files = source.rglob("*") if source.is_dir() else [source]
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return False
    return True


def build(
    target_name: str,
    version: str,
    path: str = "labextension",
    build_cmd: str = "build:prod",
    source_dir: str | None = None,
    build_dir: str | None = None,
) -> None:
    """Build the extension in ``path`` with ``npm run <build_cmd>``, its dependencies
    installed from the lock file as it is. With ``source_dir`` and ``build_dir`` (an
    editable install), nothing is done while the build is newer than every source."""
    if os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1":
        return
    styles = Path(path) / "style"
    if (
        source_dir
        and build_dir
        and _newer(Path(build_dir) / "package.json", [Path(source_dir), styles])
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(_NO_NPM)
    package = Path(path).resolve()
    installed = package / "node_modules" / ".package-lock.json"
    if not _newer(installed, [package / "package-lock.json", package / "package.json"]):
        subprocess.check_call([npm, "ci", "--no-audit", "--no-fund"], cwd=package)
    # The build script also places install.json (how the extension was installed)
    # into the built extension, the one folder the wheel installs.
    subprocess.check_call([npm, "run", build_cmd], cwd=package)
