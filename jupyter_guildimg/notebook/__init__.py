"""The kernel side: the REST client of the server extension or, without one, a
monitor in the kernel (:mod:`.client`, :mod:`.backend`, :mod:`.local`), the
ipywidgets panel (:mod:`.widget`, :mod:`.imageview`) and ``%guildimg``
(:mod:`.magic`)."""
