"""The kernel side: the REST client of the server extension or, without one, a
monitor in the kernel (:mod:`.client`, :mod:`.backend`, :mod:`.local`), the
ipywidgets panel (:mod:`.widget`, made of :mod:`.header`, :mod:`.runlist`,
:mod:`.imageview` and :mod:`.tensorboardtab`, with :mod:`.parts` shared), the
comparison of one image
across runs or revisions (:mod:`.compare`, :mod:`.difference`, :mod:`.revisions`)
and ``%guildimg`` (:mod:`.magic`).

``jupyter_guildimg.notebook.compare(runs, path)`` (also ``jupyter_guildimg.compare``)
returns the comparison widget. It is imported here, not on first use, because the
name is also its module's: a lazy attribute would be shadowed by the module once that
is imported.
"""

from __future__ import annotations

from .compare import compare

__all__ = ["compare"]
