"""What the REST API shows: runs, their captured images and image bytes.

Everything is looked up in the monitor's last snapshot (:attr:`RunsMonitor.views`)
by keys the monitor made: a run key and an image path the monitor summarized.
No file-system path is ever built from a request; image bytes are read from the
monitor's own summary files, which is also how past revisions are served after
the run directory has moved on.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .runs import Run
from .summaries import Revision, path_digest, summary_file_name
from .tensorboard import RunsMonitor, RunView
from .tfevent import read_events

__all__ = ["Catalog", "ImageBytes", "NotFoundError", "run_key"]

THUMB_MIN, THUMB_MAX = 16, 1024
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"GIF8", "gif"), (b"BM", "bmp"))
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}


class NotFoundError(LookupError):
    """No such run, image, revision or thumbnail size; the message says which."""


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str
    revision: int  # the counter of the revision served


def run_key(run: Run) -> str:
    """A run's id in URLs: the Guild id, or a digest of a plain run's directory
    (plain run ids are relative paths, with slashes)."""
    if run.kind == "guild":
        return run.id
    return "d" + hashlib.sha1(run.dir.encode("utf-8")).hexdigest()[:15]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class Catalog:
    """A read-only view of ``monitor`` for the API. Thread-safe: it reads the
    snapshot the monitor replaces after each pass, and caches thumbnails."""

    def __init__(self, monitor: RunsMonitor, thumbnail_cache: int = 512) -> None:
        self.monitor = monitor
        self._thumbs: collections.OrderedDict[tuple[Any, ...], ImageBytes] = (
            collections.OrderedDict()
        )
        self._thumb_limit = thumbnail_cache
        self._lock = threading.Lock()

    # -- runs -------------------------------------------------------------

    def runs(self, image: str | None = None) -> list[dict[str, Any]]:
        """Every run, newest first; with ``image``, only the runs that captured an
        image at that path (what the JupyterLab viewer offers to compare)."""
        views = self.monitor.views
        if image is not None:
            views = tuple(view for view in views if image in view.images)
        return [self._run_json(view) for view in views]

    def _run_json(self, view: RunView) -> dict[str, Any]:
        run = view.run
        return {
            "id": run_key(run),
            "run_id": run.id,
            "short_id": run.short_id,
            "name": view.name,
            "operation": run.operation,
            "label": run.label,
            "status": run.status,
            "started": _seconds(run.started),
            "stopped": _seconds(run.stopped),
            "kind": run.kind,
            "source": run.source,
            "image_count": len(view.images),
        }

    def find(self, key: str) -> RunView:
        """The run whose key is ``key``, or a unique prefix of a Guild id."""
        views = self.monitor.views
        for view in views:
            if run_key(view.run) == key:
                return view
        matches = [v for v in views if v.run.kind == "guild" and v.run.id.startswith(key)]
        if len(key) >= 4 and len(matches) == 1:
            return matches[0]
        raise NotFoundError(f"no run {key!r}")

    # -- images -----------------------------------------------------------

    def images(self, key: str) -> dict[str, Any]:
        view = self.find(key)
        return {
            "run": self._run_json(view),
            "images": [
                {
                    "path": path,
                    "revisions": [self._revision_json(view, path, r) for r in reversed(revisions)],
                }
                for path, revisions in sorted(view.images.items())
            ],
        }

    def _revision_json(self, view: RunView, path: str, revision: Revision) -> dict[str, Any]:
        width, height, size = revision.width, revision.height, revision.size
        if size is None:  # found on disk after a restart: read its header once
            summary = self._read_summary(view, path, revision.counter)
            width, height, size = summary.width, summary.height, len(summary.encoded_image_string)
        return {
            "revision": revision.counter,
            "time": round(revision.mtime_ns / 1e9, 3),
            "width": width,
            "height": height,
            "size": size,
        }

    def image(self, key: str, path: str, revision: int | None = None) -> ImageBytes:
        """The bytes of one revision (the newest when ``revision`` is None)."""
        view = self.find(key)
        counter = self._counter(view, path, revision)
        data = self._read_summary(view, path, counter).encoded_image_string
        return ImageBytes(data, _MIME[_format_of(data)], counter)

    def thumbnail(self, key: str, path: str, width: int, revision: int | None = None) -> ImageBytes:
        """The image scaled to at most ``width`` pixels wide and high, as PNG (or
        JPEG for JPEG images); cached."""
        if not THUMB_MIN <= width <= THUMB_MAX:
            raise NotFoundError(f"thumbnail width must be {THUMB_MIN} to {THUMB_MAX}")
        view = self.find(key)
        counter = self._counter(view, path, revision)
        cache_key = (view.images_dir, path, counter, width)
        with self._lock:
            cached = self._thumbs.get(cache_key)
            if cached is not None:
                self._thumbs.move_to_end(cache_key)
                return cached
        data = _scale(self.image(key, path, counter).data, width)
        thumb = ImageBytes(data, _MIME[_format_of(data)], counter)
        with self._lock:
            self._thumbs[cache_key] = thumb
            while len(self._thumbs) > self._thumb_limit:
                self._thumbs.popitem(last=False)
        return thumb

    def _counter(self, view: RunView, path: str, revision: int | None) -> int:
        revisions: Sequence[Revision] | None = view.images.get(path)
        if revisions is None:
            raise NotFoundError(f"no image {path!r} in run {view.name!r}")
        if revision is None:
            return revisions[-1].counter
        for item in revisions:
            if item.counter == revision:
                return revision
        raise NotFoundError(f"image {path!r} has no revision {revision}")

    def _read_summary(self, view: RunView, path: str, counter: int) -> Any:
        file = os.path.join(view.images_dir, summary_file_name(counter, path_digest(path)))
        for event in read_events(file):
            for value in event.summary.value:
                if value.tag == path and value.HasField("image"):
                    return value.image
        raise NotFoundError(f"revision {counter} of {path!r} is no longer in the log dir")


def _format_of(data: bytes) -> str:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "png"  # the monitor only writes the four formats above


def _scale(data: bytes, width: int) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)  # first frame of an animation
        frame = image.copy()
    frame.thumbnail((width, width))
    out = io.BytesIO()
    if frame.mode in ("RGB", "L") and _format_of(data) == "jpeg":
        frame.save(out, "JPEG", quality=85)
    else:
        if frame.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
            frame = frame.convert("RGBA")
        frame.save(out, "PNG")
    return out.getvalue()
