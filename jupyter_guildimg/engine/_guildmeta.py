"""Guild's per-run metadata files (``.guild/attrs/*``, ``opref``, ``LOCK``,
``manifest``), read straight from disk without importing Guild. Every reader is
forgiving: a missing or broken file gives ``None`` (or an empty value) and a
warning, never an exception, because a run being written is read every second."""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
from typing import Any

import yaml

__all__ = ["guild_status", "micros_to_seconds", "parse_opref", "read_attr", "read_sourcecode"]

log = logging.getLogger(__name__)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INTEGER = re.compile(r"-?[0-9]+\Z")


def read_attr(attrs_dir: str, name: str) -> Any:
    """One YAML value from ``.guild/attrs/<name>``; ``None`` if missing or unreadable."""
    try:
        with open(os.path.join(attrs_dir, name), encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        log.warning("Cannot read run attribute %r in %r", name, attrs_dir, exc_info=True)
        return None
    # Most attributes are plain integers; skip the YAML parser for them.
    stripped = text.strip()
    if _INTEGER.match(stripped):
        return int(stripped)
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        log.warning("Run attribute %r in %r is not valid YAML", name, attrs_dir, exc_info=True)
        return None


def micros_to_seconds(value: Any) -> float | None:
    """Guild's microsecond timestamps as seconds (``None`` for anything else)."""
    return value / 1_000_000 if isinstance(value, int) and value > 0 else None


# Runs of one operation share one opref line: a home of 10,000 runs has a handful of
# distinct lines, and shlex (pure Python) was a third of a warm listing's time.
@functools.lru_cache(maxsize=1024)
def parse_opref(text: str) -> str:
    """``"[model:]op"`` from an opref line ``pkg_type:pkg_name pkg_version model op``."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    if len(parts) < 4:
        return parts[-1] if parts else ""
    model, op = parts[2], parts[3]
    return f"{model}:{op}" if model else op


def _pid_alive(lock_path: str) -> bool:
    try:
        with open(lock_path, encoding="ascii") as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def guild_status(guild_dir: str, names: set[str], exit_status: Any) -> str:
    """A run's status as Guild reports it, from the names in its ``.guild`` and
    its ``exit_status`` attribute."""
    if "LOCK.remote" in names:
        return "running"
    if "PENDING" in names:
        return "pending"
    if "STAGED" in names:
        return "staged"
    if isinstance(exit_status, int):
        if exit_status == 0:
            return "completed"
        return "terminated" if exit_status < 0 else "error"
    if "LOCK" in names and _pid_alive(os.path.join(guild_dir, "LOCK")):
        return "running"
    return "error"


def read_sourcecode(guild_dir: str) -> frozenset[str]:
    """Run-relative paths of the ``s`` (source code) lines of ``.guild/manifest``."""
    try:
        with open(os.path.join(guild_dir, "manifest"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return frozenset()
    except (OSError, UnicodeDecodeError):
        log.warning("Cannot read run manifest in %r", guild_dir, exc_info=True)
        return frozenset()
    paths = []
    for line in lines:
        if not line.startswith("s "):
            continue
        try:
            parts = shlex.split(line)
        except ValueError:
            parts = line.split()
        if len(parts) >= 2:
            paths.append(os.path.normpath(parts[1]))
    return frozenset(paths)
