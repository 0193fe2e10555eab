"""How a watched source is described to clients (:class:`~jupyter_guildimg.rest.Sources`):
one rule for the server's REST API and the kernel's own backend."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .. import rest
from .runs import GuildHome, RunSource

__all__ = ["source_info", "sources_body"]


def source_info(source: RunSource, root: str) -> rest.SourceInfo:
    """What a client shows of a watched source: ``label`` is relative to ``root`` when
    the source lies inside it, else starts with ``~`` under the user's home, else is the
    absolute path (or URL)."""
    path = source.path
    root = os.path.abspath(root)
    home = os.path.expanduser("~")
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
        label = os.path.relpath(path, root)
    elif path == home or path.startswith(home.rstrip(os.sep) + os.sep):
        label = "~" + path[len(home.rstrip(os.sep)) :]
    else:
        label = path
    return {
        "path": path,
        # An object-store source says its kind and whether its prefix exists itself.
        "kind": getattr(source, "kind", None)
        or ("guild" if isinstance(source, GuildHome) else "dir"),
        "exists": bool(getattr(source, "exists", None)) if "://" in path else os.path.isdir(path),
        "label": label,
    }


def sources_body(sources: Sequence[RunSource], root: str) -> rest.Sources:
    """The ``sources`` answer for ``sources``, in their order."""
    return {
        "sources": [source.path for source in sources],
        "details": [source_info(source, root) for source in sources],
    }
