"""Guild's import path for event files (``guild.tfevent``): the spec and Guild
users read summaries with :class:`EventReader` from here. Event files live in
:mod:`jupyter_guildimg.engine.tfevent`."""

from __future__ import annotations

from .engine.tfevent import EventFileWriter, EventReader

__all__ = ["EventFileWriter", "EventReader"]
