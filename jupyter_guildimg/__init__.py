"""jupyter_guildimg: every image an ML run writes, in TensorBoard and in Jupyter.

The public API::

    from jupyter_guildimg import RunsMonitor, GuildHome, RunsDir, Project
"""

from __future__ import annotations

from ._version import __version__
from .project import Project
from .runs import GuildHome, Run, RunsDir, combine_sources, open_source
from .tensorboard import RunsMonitor
from .tfevent import EventReader


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The server extension (imported only when a Jupyter server loads it)."""
    from .app import GuildImgApp

    return [{"module": "jupyter_guildimg", "app": GuildImgApp}]


__all__ = [
    "EventReader",
    "GuildHome",
    "Project",
    "Run",
    "RunsDir",
    "RunsMonitor",
    "__version__",
    "combine_sources",
    "open_source",
]
