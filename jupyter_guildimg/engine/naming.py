"""Names of run log directories: what TensorBoard shows as run names.

Guild's form is kept (``"<short id> <[model:]op> <started> <label>"``), made safe
for every file system and for TensorBoard's run selector, and made unique.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Callable, Iterable

from .runs import Run

__all__ = ["MAX_NAME_BYTES", "assign_names", "default_run_name", "safe_name"]

# Well under the 255-byte limit of a file name, leaving room for a suffix that
# makes a name unique; Guild's whole-path cap of 148 characters is not needed
# since every name is one path component.
MAX_NAME_BYTES = 160

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


def _visible(name: str) -> str:
    """``name`` without invisible format characters (Unicode category Cf: bidi
    controls such as U+202E that reorder what is shown, zero-width spaces and
    joiners, tag characters) and with other control characters (C1 ones, such as
    U+009B, a terminal's CSI) as spaces; unpaired surrogates (undecodable bytes of
    a file name) become ``?``."""
    out = []
    for char in name:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        out.append(" " if category == "Cc" else "?" if category == "Cs" else char)
    return "".join(out)


def default_run_name(run: Run) -> str:
    """Guild's run name for Guild runs; the relative path for runs of a plain folder."""
    if run.kind != "guild":
        return run.id
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        if run.started is not None
        else ""
    )
    return " ".join(p for p in (run.short_id, run.operation, started, run.label) if p)


def safe_name(name: str) -> str:
    """``name`` as one safe path component: no separators, no control characters,
    no invisible format characters (bidi controls, zero-width characters: they
    could make one run's name look like another's), no ``…`` (it breaks
    TensorBoard's run selector), not hidden, valid UTF-8 of at most
    :data:`MAX_NAME_BYTES` bytes."""
    if not name.isascii():
        name = _visible(name)
    name = _UNSAFE.sub(" ", name).replace("…", "?").replace("/", "_").replace("\\", "_")
    name = " ".join(name.split())
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[: MAX_NAME_BYTES - 1].decode("utf-8", "ignore").rstrip() + "~"
    if name.startswith("."):
        name = "_" + name[1:]
    return name or "_"


def _suffix(run: Run, length: int) -> str:
    return hashlib.md5(run.dir.encode("utf-8")).hexdigest()[:length]


def assign_names(
    runs: Iterable[Run], run_name_cb: Callable[[Run], str] | None = None
) -> dict[str, str]:
    """A unique safe log directory name for each run, keyed by ``run.dir``.

    Runs whose names collide each get a short suffix derived from their own
    directory, so a run's name does not depend on the order runs are listed in.
    """
    name_of = run_name_cb or default_run_name
    wanted: dict[str, list[Run]] = {}
    for run in runs:
        wanted.setdefault(safe_name(name_of(run)), []).append(run)
    names: dict[str, str] = {}
    taken = {name for name, group in wanted.items() if len(group) == 1}
    for name, group in wanted.items():
        if len(group) == 1:
            names[group[0].dir] = name
            continue
        for run in group:
            length = 6
            candidate = f"{name} ~{_suffix(run, length)}"
            while candidate in taken:
                length += 2
                candidate = f"{name} ~{_suffix(run, length)}"
            taken.add(candidate)
            names[run.dir] = candidate
    return names
