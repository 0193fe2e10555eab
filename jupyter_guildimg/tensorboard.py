"""Guild's import path for the runs monitor (``guild.tensorboard``): the spec and
Guild users import :class:`RunsMonitor` and :func:`setup_logging` from here. The
monitor itself lives in :mod:`jupyter_guildimg.engine.monitor`."""

from __future__ import annotations

from .engine.monitor import RunsMonitor, setup_logging

__all__ = ["RunsMonitor", "setup_logging"]
