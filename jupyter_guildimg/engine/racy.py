"""The "racy" window, git's rule for trusting file times: a file or directory
modified within the last 2 seconds may change again within the same tick of the file
system's clock (a coarse one: FAT, some network file systems) without its
modification time moving. So a time that recent is never trusted to mean "unchanged":
what was read while racy is looked at again on the next pass. Used for run metadata
(:mod:`.runs`), directory listings (:mod:`.mirror`) and image files
(:mod:`.summaries`)."""

from __future__ import annotations

__all__ = ["RACY_NS", "is_racy"]

#: Nanoseconds within which a modification time is not trusted.
RACY_NS = 2_000_000_000


def is_racy(mtime_ns: int, now_ns: int) -> bool:
    """Whether something modified at ``mtime_ns`` may still change unseen at ``now_ns``
    (both ``time.time_ns()`` clock, nanoseconds)."""
    return now_ns - mtime_ns <= RACY_NS
