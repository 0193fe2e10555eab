"""``python -m jupyter_guildimg.cli``: the ``guildimg`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
