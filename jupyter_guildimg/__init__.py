"""jupyter_guildimg: every image an ML run writes, in TensorBoard and in Jupyter.

The public API::

    from jupyter_guildimg import RunsMonitor, GuildHome, RunsDir, Project

In a notebook, ``%load_ext jupyter_guildimg`` then ``%guildimg``, or
``jupyter_guildimg.panel()``; ``jupyter_guildimg.compare(runs, path)`` compares one
image across runs. ipywidgets and IPython are imported only then, so
``import jupyter_guildimg`` stays light.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .engine.monitor import RunsMonitor
from .engine.runs import GuildHome, Run, RunsDir, combine_sources, open_source
from .engine.tfevent import EventReader
from .guild.project import Project


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The server extension (imported only when a Jupyter server loads it)."""
    from .server.app import GuildImgApp

    return [{"module": "jupyter_guildimg", "app": GuildImgApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The JupyterLab sidebar, built into the package (for ``jupyter labextension
    develop``; an installed wheel puts it in ``share/jupyter/labextensions``)."""
    return [{"src": "labextension", "dest": "jupyter-guildimg"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_guildimg``: registers the ``%guildimg`` line magic."""
    from .notebook.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_guildimg``: removes ``%guildimg``."""
    from .notebook.magic import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    # ``jupyter_guildimg.panel`` is :func:`jupyter_guildimg.notebook.widget.panel`, imported on
    # first use so that ``import jupyter_guildimg`` does not load ipywidgets.
    if name == "panel":
        from .notebook.widget import panel

        return panel
    if name == "compare":  # likewise :func:`jupyter_guildimg.notebook.compare.compare`
        from .notebook.compare import compare

        return compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EventReader",
    "GuildHome",
    "Project",
    "Run",
    "RunsDir",
    "RunsMonitor",
    "__version__",
    "combine_sources",
    "compare",
    "load_ipython_extension",
    "open_source",
    "panel",
    "unload_ipython_extension",
]
