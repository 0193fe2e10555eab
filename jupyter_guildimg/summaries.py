"""Image summaries of one run: ``<run log dir>/.images/``.

Every revision of an image gets its own event file,
``events.out.tfevents.<counter as %010d>.image.<md5 of the run-relative path>``,
written whole and renamed into place. Its modification time is set to the
image's, which is how a restarted monitor knows, from one listing of
``.images``, which images are already summarized.

An image is a new revision when its ``(inode, size, mtime)`` changes. A file
modified within the file system's clock tick of being read might keep its
``mtime``, so an image read while "racy" (modified in the last 2 s) has its
CRC compared on the next pass as well.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2

from .images import ImageError, ImageIncompleteError, PreparedImage, prepare_image
from .tfevent import TEMP_PREFIX, read_events, write_event_file

__all__ = ["ImageSummaries", "Revision", "path_digest", "summary_file_name"]

log = logging.getLogger(__name__)

_RACY_NS = 2_000_000_000
_SUMMARY_NAME = re.compile(r"^events\.out\.tfevents\.(\d{10})\.image\.([0-9a-f]{32})$")

Reporter = Callable[[str, str], None]


def path_digest(relpath: str) -> str:
    """The md5 hex of a run-relative image path, as used in summary file names."""
    return hashlib.md5(relpath.encode("utf-8")).hexdigest()


def summary_file_name(counter: int, digest: str) -> str:
    return f"events.out.tfevents.{counter:010d}.image.{digest}"


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
    state: str = "new"  # new | ok | pending | broken | capped


@dataclass
class ImageSummaries:
    """Image summary state of one run. ``images_dir`` may change when the run's
    log dir is renamed; ``max_images`` caps how many distinct paths are
    summarized (updates of those already summarized always go through)."""

    run_dir: str
    images_dir: str
    max_images: int | None = 100
    settle_seconds: float = 5.0
    revisions: dict[str, list[Revision]] = field(default_factory=dict)  # by digest
    paths: dict[str, str] = field(default_factory=dict)  # digest → relpath, when known
    _images: dict[str, _Image] = field(default_factory=dict)  # current image files
    _counter: int = 0
    _loaded: bool = False
    _dir_made: bool = False
    _cap_reported: bool = False

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

    def _tag_of(self, digest: str, counter: int) -> str | None:
        path = os.path.join(self.images_dir, summary_file_name(counter, digest))
        for event in read_events(path):
            if event.HasField("summary") and event.summary.value:
                return event.summary.value[0].tag
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
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            if signature != image.signature or image.racy or image.state == "pending":
                changed.append((rel, image, signature, st.st_mtime_ns))
        written = []
        for rel, image, signature, mtime_ns in sorted(changed, key=lambda c: c[0]):
            if self._update_one(rel, image, signature, mtime_ns, now_ns, report):
                written.append(rel)
        return written

    def _update_one(
        self,
        rel: str,
        image: _Image,
        signature: tuple[int, int, int],
        mtime_ns: int,
        now_ns: int,
        report: Reporter,
    ) -> bool:
        racy = now_ns - mtime_ns < _RACY_NS
        if image.state == "new":
            history = self.revisions.get(image.digest)
            if history and history[-1].mtime_ns == mtime_ns:
                # Summarized by an earlier monitor on this log dir.
                image.state, image.signature, image.racy = "ok", signature, False
                self.paths[image.digest] = rel
                return False
        if signature == image.signature and image.state in ("pending", "broken", "capped"):
            if image.state == "pending" and not racy and now_ns - mtime_ns > self._settle_ns:
                image.state = "broken"
                report(rel, "image ends early and has not changed since; skipped until it does")
            return False
        try:
            with open(image.path, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            image.signature, image.state = signature, "broken"
            report(rel, f"cannot read image: {e.strerror or e}")
            return False
        if len(data) != signature[1]:
            image.signature = None  # changed while being read: look again next pass
            return False
        crc = crc32c.crc32c(data)
        if signature == image.signature and image.state == "ok" and crc == image.crc:
            image.racy = racy
            return False
        image.signature, image.crc, image.racy = signature, crc, racy
        try:
            prepared = prepare_image(data)
        except ImageIncompleteError:
            image.state = "pending"
            return False
        except ImageError as e:
            image.state = "broken"
            report(rel, f"not summarized: {e}")
            return False
        if image.digest not in self.revisions and self._capped():
            image.state = "capped"
            if not self._cap_reported:
                self._cap_reported = True
                report(
                    rel,
                    f"run has reached the cap of {self.max_images} summarized images; new images"
                    " are not summarized (images already summarized still update)",
                )
            return False
        self._write(rel, image.digest, prepared, mtime_ns)
        image.state = "ok"
        return True

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
        # wall_time and step stay 0, as Guild writes them (the spec prints neither).
        event = event_pb2.Event(summary=summary_pb2.Summary(value=[{"tag": rel, "image": image}]))
        counter = self._counter
        path = os.path.join(self.images_dir, summary_file_name(counter, digest))
        write_event_file(path, [event], mtime_ns=mtime_ns)
        self._counter = counter + 1
        self.paths[digest] = rel
        self.revisions.setdefault(digest, []).append(
            Revision(
                counter,
                mtime_ns,
                prepared.width,
                prepared.height,
                len(prepared.data),
                prepared.format,
            )
        )

    def _load(self) -> None:
        """Pick up what an earlier monitor wrote: one listing of ``.images``."""
        self._loaded = True
        try:
            entries = list(os.scandir(self.images_dir))
        except FileNotFoundError:
            return
        self._dir_made = True
        found = []
        for entry in entries:
            match = _SUMMARY_NAME.match(entry.name)
            if match is None:
                if entry.name.startswith(TEMP_PREFIX):  # left by a monitor that was killed
                    os.unlink(entry.path)
                continue
            try:
                mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            found.append((int(match.group(1)), match.group(2), mtime_ns))
        for counter, digest, mtime_ns in sorted(found):
            self.revisions.setdefault(digest, []).append(Revision(counter, mtime_ns))
            self._counter = counter + 1
