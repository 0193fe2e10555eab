"""The subset of ``guild.yml`` the project runner reads: operations (``main`` or
``exec``), their ``flags`` and ``requires: - file:`` entries; and how flags become
command-line arguments and Guild's default label."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = [
    "command",
    "default_label",
    "flag_args",
    "flag_text",
    "read_opdef",
    "required_files",
    "resolve_flags",
]

_FLAG_REF = re.compile(r"\$\{([^${}]+)\}")


def read_opdef(guildfile: str, op: str) -> tuple[Mapping[str, Any], str]:
    """The definition of ``op`` in ``guildfile`` and the md5 of the file.

    FileNotFoundError if there is no guild.yml; ValueError naming the available
    operations if ``op`` is not one of them."""
    try:
        with open(guildfile, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no guild.yml in project {os.path.dirname(guildfile)}") from None
    ops = yaml.safe_load(data) or {}
    if not isinstance(ops, dict):
        raise ValueError(f"{guildfile} must map operation names to definitions")
    opdef = ops.get(op)
    if not isinstance(opdef, dict):
        available = ", ".join(sorted(map(str, ops))) or "none"
        raise ValueError(f"no operation {op!r} in {guildfile}; it has: {available}")
    return opdef, hashlib.md5(data).hexdigest()


def flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"  # as Guild writes booleans
    return str(value)


def _flag_items(flags: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, text) per flag, by name; flags whose value is None are left out."""
    return [(name, flag_text(flags[name])) for name in sorted(flags) if flags[name] is not None]


def flag_args(flags: Mapping[str, Any]) -> list[str]:
    return [arg for name, text in _flag_items(flags) for arg in (f"--{name}", text)]


def default_label(flags: Mapping[str, Any]) -> str:
    """Guild's default label: ``name=value`` per flag, by name, joined by spaces."""
    return " ".join(
        f"{name}={shlex.quote(text) if not text or any(c.isspace() for c in text) else text}"
        for name, text in _flag_items(flags)
    )


def resolve_flags(op: str, opdef: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of the op's flags, overridden by ``given`` (values kept as given)."""
    values = {
        str(name): spec.get("default") if isinstance(spec, dict) else spec
        for name, spec in (opdef.get("flags") or {}).items()
    }
    unknown = sorted(set(given) - set(values))
    if unknown:
        defined = ", ".join(values) or "none"
        raise ValueError(f"{op} has no flag {', '.join(unknown)}; its flags: {defined}")
    values.update(given)
    try:  # checked now, not halfway through writing the run
        yaml.safe_dump(values)
    except yaml.YAMLError as e:
        raise ValueError(f"flag values of {op} must be plain YAML values: {e}") from None
    return values


def command(op: str, opdef: Mapping[str, Any], flags: Mapping[str, Any]) -> list[str]:
    args = flag_args(flags)
    if ("main" in opdef) == ("exec" in opdef):
        raise ValueError(f"operation {op!r} needs exactly one of 'main' and 'exec'")
    if "main" in opdef:
        return [sys.executable, "-m", *shlex.split(str(opdef["main"])), *args]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "flag_args":
            return shlex.join(args)
        # Anything else is left for a shell in the command to expand.
        if name not in flags:
            return match.group(0)
        return "" if flags[name] is None else flag_text(flags[name])

    cmd: list[str] = []
    for token in shlex.split(str(opdef["exec"])):
        if token == "${flag_args}":
            cmd += args
        else:
            cmd.append(_FLAG_REF.sub(substitute, token))
    return cmd


def required_files(spec: Any) -> list[str]:
    """Names of the ``{file: NAME}`` entries of ``requires``, alone or in lists."""
    if spec is None:
        return []
    if isinstance(spec, list):
        return [name for item in spec for name in required_files(item)]
    if isinstance(spec, dict) and "file" in spec:
        return [str(spec["file"])]
    raise ValueError(f"unsupported requires entry {spec!r}: only 'file:' is supported")
