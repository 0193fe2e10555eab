"""Background Python children: the monitor's helpers in processes of their own.

The index children (:mod:`.indexchild`) and the listing child (:mod:`.listchild`)
are each a ``python -c`` of this installation's interpreter that imports one of our
modules and runs its ``child_main``. They start the same way, here: made nicer
(:data:`~.processes.BACKGROUND_NICENESS`) before their imports take their share of
the CPU, given the minimal environment TensorBoard gets (no token or credential of
the server) and pipes to talk over. Starting one never raises: the result says
whether it started and, if not, why, and the caller does the work in its own
process instead.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from .processes import BACKGROUND_NICENESS, child_environment

__all__ = ["ChildStart", "start_python_child"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildStart:
    """A child started (``process``), or why it could not be (``message``)."""

    process: subprocess.Popen[bytes] | None
    message: str = ""

    @property
    def started(self) -> bool:
        return self.process is not None


def start_python_child(
    what: str, statement: str, args: Sequence[str] = (), *, stdin: bool = False
) -> ChildStart:
    """Start ``python -c "<nice>; <statement>" args...`` in the background, its
    stdout and stderr piped (and its stdin with ``stdin``, else closed). ``what``
    names it in the message and log when it cannot start (``"the index child"``)."""
    code = f"import os; os.nice({BACKGROUND_NICENESS}); {statement}"
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(tempfile.gettempdir()),
            close_fds=True,
        )
    except OSError as e:
        log.warning("Cannot start %s process", what, exc_info=True)
        return ChildStart(None, f"cannot start {sys.executable!r}: {e.strerror or e}")
    return ChildStart(process)
