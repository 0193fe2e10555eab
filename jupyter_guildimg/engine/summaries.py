"""Image summaries of one run: ``<run log dir>/.images/``.

Every revision of an image gets its own event file,
``events.out.tfevents.<counter as %010d>.image.<md5 of the run-relative path>``
(:func:`~.layout.summary_file_name`), written whole and renamed into place. Its
modification time is set to the image's, which is how a restarted monitor knows,
from one listing of ``.images``, which images are already summarized.

An image is a new revision when its ``(inode, size, mtime)`` changes. A file
modified within the file system's clock tick of being read might keep its
``mtime``, so an image read while "racy" (modified in the last 2 s, :mod:`.racy`)
has its CRC compared on the next pass as well.

Reading never blocks and is bounded: an image is opened non-blocking, must be a
regular file (a FIFO or device is reported once and skipped until it changes),
its signature bytes are checked before the rest is read, and a file over
``max_image_bytes`` is refused without being read. An empty file is an image
still being created: it waits, silently, until it has content. A summary that
cannot be written (disk full) leaves the image changed, so the next pass tries
again. Beyond ``max_revisions`` revisions of one image, the oldest summary files
of that image are removed.

Each event has ``step`` and ``wall_time`` 0 by default, as Guild writes them (the
spec prints neither). With ``revision_steps``, ``step`` is the revision's counter
and ``wall_time`` the image's modification time in seconds, so TensorBoard's step
slider walks through an image's revisions, dated. Nothing read back depends on
either field (restarts go by file names and times, readers by tags), so a log dir
may hold both forms.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2

from .images import (
    SIGNATURE_BYTES,
    ImageError,
    ImageIncompleteError,
    PreparedImage,
    prepare_image,
    sniff_format,
)
from .layout import TEMP_PREFIX, parse_summary_name, path_digest, summary_file_name
from .racy import is_racy
from .tfevent import read_events, write_event_file

# path_digest and summary_file_name live in .layout; importable from here too.
__all__ = ["ImageSummaries", "Revision", "path_digest", "summary_file_name"]

log = logging.getLogger(__name__)

# States kept until the file's signature changes (pending is also settled by time).
_WAITING = frozenset({"pending", "broken", "capped", "empty", "irregular", "large"})
# Reported on entering them only: a FIFO being written or a big file growing keeps
# changing its signature, and a problem per pass would say nothing new.
_STREAK_STATES = frozenset({"irregular", "large"})
_NOT_REGULAR = "not a regular file; skipped until it changes"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC

Reporter = Callable[[str, str], None]


@dataclass(frozen=True)
class Revision:
    """One captured revision. ``mtime_ns`` is the image's modification time; the
    size fields are ``None`` for revisions found on disk after a restart."""

    counter: int
    mtime_ns: int
    width: int | None = None
    height: int | None = None
    size: int | None = None
    format: str | None = None


@dataclass
class _Image:
    path: str  # absolute path in the run
    digest: str
    signature: tuple[int, int, int] | None = None
    crc: int | None = None
    racy: bool = False
    state: str = "new"  # new | ok | pending | broken | capped | empty | irregular | large
    write_failed: bool = False  # the last attempt to write a summary failed (reported)


@dataclass
class ImageSummaries:
    """Image summary state of one run. ``images_dir`` may change when the run's
    log dir is renamed; ``max_images`` caps how many distinct paths are
    summarized (updates of those already summarized always go through).

    ``max_revisions`` caps the revisions kept per image (``None`` or 0: no cap):
    after a revision is written, the oldest summary files of that image beyond
    the cap are removed (a lowered cap applies at an image's next revision).
    ``max_image_bytes`` (``None``: no limit) refuses larger files unread.
    ``revision_steps`` puts each revision's counter and time into its event's
    ``step`` and ``wall_time`` (default: both 0, Guild's events).
    """

    run_dir: str
    images_dir: str
    max_images: int | None = 100
    settle_seconds: float = 5.0
    max_revisions: int | None = 100
    max_image_bytes: int | None = 64 * 2**20
    revision_steps: bool = False
    revisions: dict[str, list[Revision]] = field(default_factory=dict)  # by digest
    paths: dict[str, str] = field(default_factory=dict)  # digest → relpath, when known
    _images: dict[str, _Image] = field(default_factory=dict)  # current image files
    _counter: int = 0
    _loaded: bool = False
    _dir_made: bool = False
    _cap_reported: bool = False
    _dropped: dict[str, int] = field(default_factory=dict)  # digest → revisions removed

    @property
    def image_count(self) -> int:
        """Distinct image paths with at least one revision."""
        return len(self.revisions)

    def history(self) -> dict[str, tuple[Revision, ...]]:
        """Every summarized image path and its revisions, oldest first. Paths of
        images summarized before a restart and gone from the run since are read
        back from their summary files' tags."""
        out = {}
        for digest, revisions in self.revisions.items():
            rel = self.paths.get(digest)
            if rel is None:
                rel = self._tag_of(digest, revisions[-1].counter)
                if rel is None:
                    continue
                self.paths[digest] = rel
            out[rel] = tuple(revisions)
        return out

    def dropped(self) -> dict[str, int]:
        """Run-relative image path → revisions of it this object removed under
        ``max_revisions``. Only removals since this object was made are counted:
        after a restart, revisions removed earlier (or missing for any reason) are
        not knowable from the files left, so they are not counted."""
        return {self.paths[d]: n for d, n in self._dropped.items() if d in self.paths}

    def _tag_of(self, digest: str, counter: int) -> str | None:
        path = os.path.join(self.images_dir, summary_file_name(counter, digest))
        for event in read_events(path):
            if event.HasField("summary") and event.summary.value:
                return str(event.summary.value[0].tag)
        return None

    def add(self, relpaths: Iterable[str]) -> None:
        for rel in relpaths:
            if rel not in self._images:
                self._images[rel] = _Image(os.path.join(self.run_dir, rel), path_digest(rel))

    def remove(self, relpaths: Iterable[str]) -> None:
        for rel in relpaths:
            self._images.pop(rel, None)

    def update(self, report: Reporter) -> list[str]:
        """Summarize every image that is new or changed; returns their paths."""
        if not self._loaded:
            self._load()
        now_ns = time.time_ns()
        changed = []
        for rel, image in self._images.items():
            try:
                st = os.stat(image.path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone: the mirror's next listing drops it
            except OSError as e:
                if image.state != "broken":
                    image.state = "broken"
                    report(rel, f"cannot read image: {e.strerror or e}")
                continue
            if _signature(st) != image.signature or image.racy or image.state == "pending":
                changed.append((rel, image, st))
        written = []
        for rel, image, st in sorted(changed, key=lambda c: c[0]):
            if self._update_one(rel, image, st, now_ns, report):
                written.append(rel)
        return written

    def _update_one(
        self, rel: str, image: _Image, st: os.stat_result, now_ns: int, report: Reporter
    ) -> bool:
        signature, mtime_ns = _signature(st), st.st_mtime_ns
        racy = is_racy(mtime_ns, now_ns)
        if image.state == "new":
            history = self.revisions.get(image.digest)
            if history and history[-1].mtime_ns == mtime_ns:
                # Summarized by an earlier monitor on this log dir.
                image.state, image.signature, image.racy = "ok", signature, False
                self.paths[image.digest] = rel
                return False
        if signature == image.signature and image.state in _WAITING:
            if image.state == "pending" and not racy and now_ns - mtime_ns > self._settle_ns:
                image.state = "broken"
                report(rel, "image ends early and has not changed since; skipped until it does")
            return False
        if not stat.S_ISREG(st.st_mode):
            # Checked before opening too: opening some devices has side effects.
            self._skip(rel, image, signature, "irregular", _NOT_REGULAR, report)
            return False
        data = self._read(rel, image, signature, report)
        if data is None:
            return False
        crc = crc32c.crc32c(data)
        if signature == image.signature and image.state == "ok" and crc == image.crc:
            image.racy = racy
            return False
        try:
            prepared = prepare_image(data)
        except ImageIncompleteError:
            image.signature, image.crc, image.racy, image.state = signature, crc, racy, "pending"
            return False
        except ImageError as e:
            image.signature, image.crc, image.racy, image.state = signature, crc, racy, "broken"
            report(rel, f"not summarized: {e}")
            return False
        if image.digest not in self.revisions and self._capped():
            image.signature, image.crc, image.racy, image.state = signature, crc, racy, "capped"
            if not self._cap_reported:
                self._cap_reported = True
                report(
                    rel,
                    f"run has reached the cap of {self.max_images} summarized images; new images"
                    " are not summarized (images already summarized still update)",
                )
            return False
        try:
            self._write(rel, image.digest, prepared, mtime_ns)
        except OSError as e:
            # The signature is kept unset, so the image counts as changed and the
            # next pass tries again; one report per streak of failures.
            log.debug("Writing the summary of %r failed", rel, exc_info=True)
            image.signature = None
            self._dir_made = False  # the log dir may have been removed under us
            if not image.write_failed:
                image.write_failed = True
                report(
                    rel,
                    f"cannot write summary to {self.images_dir}: {e.strerror or e};"
                    " retried next pass",
                )
            return False
        image.signature, image.crc, image.racy, image.state = signature, crc, racy, "ok"
        image.write_failed = False
        self._trim(image.digest)
        return True

    def _read(
        self, rel: str, image: _Image, signature: tuple[int, int, int], report: Reporter
    ) -> bytes | None:
        """The image's bytes, or ``None`` with the image's state updated. Never
        blocks (non-blocking open, regular files only) and never reads more than
        ``max_image_bytes`` + 1 bytes, nor more than the signature bytes of a file
        that is not an image."""
        try:
            with open(os.open(image.path, _OPEN_FLAGS), "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    self._skip(rel, image, _signature(st), "irregular", _NOT_REGULAR, report)
                    return None
                if _signature(st) != signature:
                    image.signature = None  # replaced since the stat: look again next pass
                    return None
                if st.st_size == 0:
                    # Most likely just created and about to be written: not an image
                    # yet, and not worth a problem while it stays empty.
                    image.signature, image.racy, image.state = signature, False, "empty"
                    return None
                head = f.read(SIGNATURE_BYTES)
                try:
                    sniff_format(head)
                except ImageIncompleteError:
                    pass  # a few bytes only: prepare_image tells what they are
                except ImageError as e:
                    self._skip(rel, image, signature, "broken", f"not summarized: {e}", report)
                    return None
                if self.max_image_bytes is not None and st.st_size > self.max_image_bytes:
                    message = (
                        f"not summarized: too large ({st.st_size} bytes; the limit is"
                        f" {self.max_image_bytes}); skipped until it changes"
                    )
                    self._skip(rel, image, signature, "large", message, report)
                    return None
                # One byte more than the size, to see a file that grew meanwhile.
                data = head + f.read(st.st_size - len(head) + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None  # gone: the mirror's next listing drops it
        except OSError as e:
            message = f"cannot read image: {e.strerror or e}"
            self._skip(rel, image, signature, "broken", message, report)
            return None
        if len(data) != st.st_size:
            image.signature = None  # changed while being read: look again next pass
            return None
        return data

    @staticmethod
    def _skip(
        rel: str,
        image: _Image,
        signature: tuple[int, int, int],
        state: str,
        message: str,
        report: Reporter,
    ) -> None:
        """Skip the image until its signature changes, reporting ``message`` (for
        the states of ``_STREAK_STATES``, only on entering the state)."""
        entering = image.state != state
        image.signature, image.racy, image.state = signature, False, state
        if entering or state not in _STREAK_STATES:
            report(rel, message)

    @property
    def _settle_ns(self) -> int:
        return int(self.settle_seconds * 1e9)

    def _capped(self) -> bool:
        return self.max_images is not None and len(self.revisions) >= self.max_images

    def _write(self, rel: str, digest: str, prepared: PreparedImage, mtime_ns: int) -> None:
        if not self._dir_made:
            os.makedirs(self.images_dir, exist_ok=True)
            self._dir_made = True
        image = summary_pb2.Summary.Image(
            height=prepared.height,
            width=prepared.width,
            colorspace=prepared.colorspace,
            encoded_image_string=prepared.data,
        )
        summary = summary_pb2.Summary(value=[{"tag": rel, "image": image}])
        counter = self._counter
        if self.revision_steps:
            # TensorBoard keeps the events of a tag in order of step, and an event whose
            # step is not above the last one drops every event at that step or later (a
            # restarted training): with step 0 throughout it shows only the newest
            # revision. The counter goes up across restarts (it goes on from the files
            # found), so every revision stays. TensorBoard keeps at most N events per
            # tag (`--samples_per_plugin images=N`; the extension passes its image
            # history, 100 by default, as max_revisions is): past N, its reservoir keeps
            # a random sample of the older ones but always the newest, so the newest
            # revision is always on the slider (TensorBoard 2.21 with images=3, after
            # 12 revisions: steps 1, 8 and 11).
            event = event_pb2.Event(wall_time=mtime_ns / 1e9, step=counter, summary=summary)
        else:
            event = event_pb2.Event(summary=summary)  # step and wall_time 0, as Guild's
        path = os.path.join(self.images_dir, summary_file_name(counter, digest))
        write_event_file(path, [event], mtime_ns=mtime_ns)
        self._counter = counter + 1
        self.paths[digest] = rel
        size = len(prepared.data)
        revision = Revision(
            counter, mtime_ns, prepared.width, prepared.height, size, prepared.format
        )
        self.revisions.setdefault(digest, []).append(revision)

    def _trim(self, digest: str) -> None:
        """Remove the oldest summary files of one image beyond ``max_revisions``.
        Only names built from this image's own revisions are removed."""
        if not self.max_revisions:
            return
        history = self.revisions[digest]
        while len(history) > self.max_revisions:
            path = os.path.join(self.images_dir, summary_file_name(history[0].counter, digest))
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                # Kept in the history; tried again after the image's next revision.
                log.warning("Cannot remove an old revision %r", path, exc_info=True)
                return
            del history[0]
            self._dropped[digest] = self._dropped.get(digest, 0) + 1

    def _load(self) -> None:
        """Pick up what an earlier monitor wrote: one listing of ``.images``."""
        self._loaded = True
        try:
            entries = list(os.scandir(self.images_dir))
        except FileNotFoundError:
            return
        self._dir_made = True
        found: list[tuple[int, str, int]] = []
        for entry in entries:
            parsed = parse_summary_name(entry.name)
            if parsed is None:
                if entry.name.startswith(TEMP_PREFIX):  # left by a monitor that was killed
                    os.unlink(entry.path)
                continue
            try:
                mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            found.append((*parsed, mtime_ns))
        for counter, digest, mtime_ns in sorted(found):
            self.revisions.setdefault(digest, []).append(Revision(counter, mtime_ns))
            self._counter = counter + 1


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns
