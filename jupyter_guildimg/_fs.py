"""File-system helpers for the log dir. Nothing here ever follows a symlink into a
run directory, and nothing deletes a file the monitor could not have written."""

from __future__ import annotations

import logging
import os
import re

from .tfevent import TEMP_PREFIX

log = logging.getLogger(__name__)

# The monitor's own files: image summaries, hparams/time files and temporaries.
_OWN_FILE = re.compile(
    r"^(events\.out\.tfevents\.\d{10}\.(image\.[0-9a-f]{32}|hparams|time)|"
    + re.escape(TEMP_PREFIX)
    + r"[0-9a-f]+)$"
)


def is_own_file(name: str) -> bool:
    """Whether a log-dir file name is one the monitor writes."""
    return _OWN_FILE.match(name) is not None


def safe_remove(path: str) -> list[str]:
    """Remove ``path`` from the log dir: symlinks, the monitor's own files and the
    directories they leave empty. Anything else is left in place; the paths left
    are returned (and logged) so nothing a user put there is lost."""
    kept: list[str] = []
    if not os.path.lexists(path):
        return kept
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            _remove_file(path, kept)
        else:
            _remove_tree(path, kept)
    except FileNotFoundError:
        pass
    if kept:
        log.warning(
            "Left %d file(s) the monitor did not write in the log dir, e.g. %s", len(kept), kept[0]
        )
    return kept


def _remove_file(path: str, kept: list[str]) -> None:
    if os.path.islink(path) or is_own_file(os.path.basename(path)):
        os.unlink(path)
    else:
        kept.append(path)


def _remove_tree(path: str, kept: list[str]) -> None:
    with os.scandir(path) as entries:
        children = list(entries)
    for entry in children:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path, kept)
        else:
            _remove_file(entry.path, kept)
    try:
        os.rmdir(path)
    except OSError:
        if not kept:
            raise
