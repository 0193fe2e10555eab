"""A small runner of Guild-format runs (a subset of Guild, not Guild): operations
from a ``guild.yml`` (:mod:`.project`, :mod:`.guildfile`) and the demo runs
(:mod:`.demo`). The spec, the tests and ``guildimg demo`` use it."""
