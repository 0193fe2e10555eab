r"""The mirror of one run in the log dir: a symlink for every file of the run.

A pass costs one ``stat`` per directory of the run: a directory is listed again
only when its modification time moved (an entry was added, removed or renamed),
or while that time is too recent to be trusted (:mod:`.racy`). The mirror never writes inside
the run directory: every write goes through a path under ``log_dir``.

What is mirrored: every file of the run except source code, the top-level
``.guild`` (only TensorBoard event files are taken from it) and symlinked
directories. Files that are symlinks in the run are mirrored but are not
reported as images: they are inputs, not outputs. Sockets, FIFOs and devices are
neither mirrored nor ever opened: the mirror only lists, ``stat``\ s and links.

A directory below the run's top that cannot be read (a permission, a path too
long) is reported once and left as it was last seen; it is looked at again on
every pass.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import layout
from .images import is_image_name
from .layout import IMAGES_DIR
from .racy import is_racy

# IMAGES_DIR lives in .layout; importable from here too.
__all__ = ["IMAGES_DIR", "MirrorChanges", "RunMirror"]

log = logging.getLogger(__name__)

_GUILD = ".guild"
_SKIPPED_GUILD_DIRS = frozenset({".guild/sourcecode"})

Reporter = Callable[[str, str], None]


@dataclass
class _DirState:
    path: str  # absolute, in the run
    mtime_ns: int | None  # None: list it again on the next pass
    files: set[str] = field(default_factory=set)
    subdirs: set[str] = field(default_factory=set)
    subdir_rels: list[str] = field(default_factory=list)


@dataclass
class MirrorChanges:
    """Image files (run-relative) that appeared in or left the run in one scan."""

    added_images: list[str] = field(default_factory=list)
    removed_images: list[str] = field(default_factory=list)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


class RunMirror:
    """Keeps ``log_dir`` a mirror of ``run_dir``. ``sourcecode`` holds run-relative
    paths to leave out. ``log_dir`` may be reassigned when the run is renamed."""

    def __init__(self, run_dir: str, log_dir: str, sourcecode: frozenset[str] = frozenset()):
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.sourcecode = sourcecode
        self._dirs: dict[str, _DirState] = {}
        self._made: set[str] = set()  # mirror directories known to exist
        self._outputs: set[str] = set()  # image files the run wrote itself
        self._warned_images_dir = False
        self._unreadable: set[str] = set()  # directories reported as unreadable

    def scan(self, report: Reporter) -> MirrorChanges:
        """Bring the mirror up to date; returns the image files added and removed.
        Raises :class:`OSError` only if the run directory itself cannot be read."""
        changes = MirrorChanges()
        now_ns = time.time_ns()
        stack = [""]
        while stack:
            rel = stack.pop()
            state = self._dirs.get(rel)
            try:
                path = state.path if state else os.path.join(self.run_dir, rel)
                mtime_ns = os.stat(path).st_mtime_ns
                if state is None or state.mtime_ns != mtime_ns:
                    state = self._rescan(rel, state, changes, report)
                    state.mtime_ns = None if is_racy(mtime_ns, now_ns) else mtime_ns
            except (FileNotFoundError, NotADirectoryError):
                if rel == "":
                    raise
                self._drop_dir(rel, changes)
                continue
            except OSError as e:
                if rel == "":
                    raise
                # Unknown is not gone: what was mirrored from it stays.
                if rel not in self._unreadable:
                    self._unreadable.add(rel)
                    report(rel, f"directory not mirrored: {e.strerror or e}; kept as last seen")
                continue
            if self._unreadable:
                self._unreadable.discard(rel)
            stack.extend(state.subdir_rels)
        return changes

    def images(self) -> list[str]:
        """Run-relative paths of the image files the run wrote (not symlinks), sorted."""
        return sorted(self._outputs)

    # -- listing ----------------------------------------------------------

    def _rescan(
        self, rel: str, old: _DirState | None, changes: MirrorChanges, report: Reporter
    ) -> _DirState:
        in_guild = rel == _GUILD or rel.startswith(_GUILD + "/")
        files: dict[str, bool] = {}  # name → is an output (not a symlink in the run)
        subdirs: set[str] = set()
        path_in_run = os.path.join(self.run_dir, rel)
        with os.scandir(path_in_run) as entries:
            for entry in entries:
                path = _join(rel, entry.name)
                if path in self.sourcecode or path in _SKIPPED_GUILD_DIRS:
                    continue
                if rel == "" and entry.name == IMAGES_DIR:
                    if not self._warned_images_dir:
                        self._warned_images_dir = True
                        report(path, f"not mirrored: the name {IMAGES_DIR} holds image summaries")
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.add(entry.name)
                        continue
                    if entry.is_symlink():
                        # Symlinked directories and broken links are not mirrored.
                        if entry.is_dir() or not entry.is_file():
                            continue
                        is_output = False
                    elif entry.is_file(follow_symlinks=False):
                        is_output = True
                    else:
                        continue  # sockets, fifos
                except OSError:
                    continue
                if in_guild and "tfevents" not in entry.name:
                    continue
                files[entry.name] = is_output
        state = old or _DirState(path_in_run, None)
        if old is None:
            self._reconcile_new_dir(rel, files, subdirs)
        else:
            for name in state.subdirs - subdirs:
                self._drop_dir(_join(rel, name), changes)
            for name in state.files - files.keys():
                self._unlink(_join(rel, name), changes)
        for name in files.keys() - state.files:
            # All links first: should one fail (it raises), no image of this directory
            # has been taken yet, so the next listing, which links again, takes them all.
            self._link(_join(rel, name), report)
        for name, is_output in files.items():
            path = _join(rel, name)
            if is_output and not in_guild and is_image_name(name):
                if path not in self._outputs:
                    self._outputs.add(path)
                    changes.added_images.append(path)
            elif path in self._outputs:
                self._outputs.discard(path)
                changes.removed_images.append(path)
        state.files = set(files)
        state.subdirs = subdirs
        state.subdir_rels = [_join(rel, name) for name in subdirs]
        self._dirs[rel] = state
        return state

    def _drop_dir(self, rel: str, changes: MirrorChanges) -> None:
        prefix = rel + "/"
        for path in [p for p in self._dirs if p == rel or p.startswith(prefix)]:
            state = self._dirs.pop(path)
            for name in state.files:
                self._forget_output(_join(path, name), changes)
        self._made = {p for p in self._made if p != rel and not p.startswith(prefix)}
        layout.safe_remove(os.path.join(self.log_dir, rel))

    def _forget_output(self, path: str, changes: MirrorChanges) -> None:
        if path in self._outputs:
            self._outputs.discard(path)
            changes.removed_images.append(path)

    # -- the mirror side --------------------------------------------------

    def _reconcile_new_dir(self, rel: str, files: dict[str, bool], subdirs: set[str]) -> None:
        """First look at a directory: clear what an earlier mirror left that the run
        no longer has (after a restart with an existing log dir)."""
        mirror_dir = os.path.join(self.log_dir, rel)
        try:
            existing = os.listdir(mirror_dir)
        except (FileNotFoundError, NotADirectoryError):
            return
        self._made.add(rel)
        for name in existing:
            if name in files or name in subdirs:
                continue
            if rel == "" and (name == IMAGES_DIR or layout.is_own_file(name)):
                continue
            layout.safe_remove(os.path.join(mirror_dir, name))

    def _ensure_dir(self, rel: str) -> None:
        if rel in self._made:
            return
        path = os.path.join(self.log_dir, rel)
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
            layout.safe_remove(path)
        os.makedirs(path, exist_ok=True)
        self._made.add(rel)

    def _link(self, path: str, report: Reporter) -> None:
        self._ensure_dir(os.path.dirname(path))
        target = os.path.join(self.run_dir, path)
        link = os.path.join(self.log_dir, path)
        try:
            os.symlink(target, link)
            return
        except FileExistsError:
            pass
        if os.path.islink(link) and os.readlink(link) == target:
            return
        if layout.safe_remove(link):
            report(
                path,
                "not mirrored: the log dir holds a file of that name the monitor did not write",
            )
            return
        os.symlink(target, link)

    def _unlink(self, path: str, changes: MirrorChanges) -> None:
        self._forget_output(path, changes)
        layout.safe_remove(os.path.join(self.log_dir, path))
