"""What the REST API shows: runs, their captured images and image bytes.

Everything is looked up in the monitor's last snapshot (:attr:`RunsMonitor.views`)
by keys the monitor made: a run key and an image path the monitor summarized.
No file-system path is ever built from a request; image bytes are read from the
monitor's own summary files, which is also how past revisions are served after
the run directory has moved on.

Thumbnails are bounded in memory: a request's width is rounded up to one of
:data:`THUMB_WIDTHS` (so the cache holds a few sizes per image, not any number),
JPEG is decoded already reduced (libjpeg's DCT scaling, ``Image.draft``), an image
whose decoded pixels would take more than ``thumbnail_max_decode`` bytes gets
:class:`ThumbnailError` instead of being decoded (PNG, GIF and BMP cannot be decoded
reduced), at most ``concurrent_decodes`` images are decoded at once (in the
catalog's own threads, so freed pixels are not scattered over every request
thread's malloc arena), the memory of a large decode is given back to the system
(glibc's ``malloc_trim``) as soon as the thumbnail is made, and the cache is
bounded by bytes as well as by count.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import ctypes
import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .. import rest
from .images import content_type
from .layout import path_digest, summary_file_name
from .monitor import RunsMonitor, RunView
from .runs import Run
from .summaries import Revision
from .tfevent import read_events

__all__ = [
    "THUMB_MAX",
    "THUMB_MIN",
    "THUMB_WIDTHS",
    "AmbiguousRunError",
    "Catalog",
    "ImageBytes",
    "NotFoundError",
    "ThumbnailError",
    "run_key",
    "run_matches",
    "thumb_width",
]

log = logging.getLogger(__name__)

# The widths thumbnails are made at. A request is rounded up to the next one, so
# each image has at most this many cached thumbnails. 160 (the notebook panel),
# 192 (the JupyterLab sidebar) and 512 (the panel's side-by-side comparison) are
# what the clients ask for; the others cover the accepted range in steps of <= 2x.
THUMB_WIDTHS = (16, 32, 64, 128, 160, 192, 256, 512, 1024)
THUMB_MIN, THUMB_MAX = THUMB_WIDTHS[0], THUMB_WIDTHS[-1]
# Pillow's storage per pixel: 1 byte for these, 2 for 16-bit grey, 4 for every
# other mode (RGB included: Pillow pads it to 4 bytes).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_REDUCING_GAP = 2.0  # decode (JPEG) or reduce to >= 2x the size, then resample
# Decodes at least this large are followed by malloc_trim: Pillow allocates images
# in blocks of this size, and glibc keeps such blocks in the decoding thread's arena.
_TRIM_AFTER = 16 * 2**20
# What Pillow raises for bytes it cannot decode.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_MAX_NAMED = 10  # candidates an ambiguous run key's error names


class NotFoundError(LookupError):
    """No such run, image or revision; the message says which."""


class AmbiguousRunError(NotFoundError):
    """A run key that names several runs; the message lists them."""


class ThumbnailError(ValueError):
    """No thumbnail can be made: the width is outside ``THUMB_MIN``..``THUMB_MAX``,
    the image is too large to decode for one (the full image is still served), or
    its bytes do not decode. The message says which, for the user."""


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


def run_matches(run: rest.Run, q: str) -> bool:
    """Whether ``GET runs?q=`` keeps ``run``: every word of ``q`` (split at white
    space) occurs, ignoring case, in at least one of the run's
    :data:`~jupyter_guildimg.rest.FILTER_FIELDS`."""
    fields: Mapping[str, object] = run
    texts = [str(fields[name] or "").lower() for name in rest.FILTER_FIELDS]
    return all(any(word in text for text in texts) for word in q.lower().split())


def thumb_width(width: int) -> int:
    """The width a thumbnail asked at ``width`` is made at: the smallest of
    :data:`THUMB_WIDTHS` that is >= ``width``. ThumbnailError outside
    ``THUMB_MIN``..``THUMB_MAX``."""
    if not THUMB_MIN <= width <= THUMB_MAX:
        raise ThumbnailError(f"thumbnail width must be {THUMB_MIN} to {THUMB_MAX}, not {width}")
    return THUMB_WIDTHS[bisect.bisect_left(THUMB_WIDTHS, width)]


class Catalog:
    """A read-only view of ``monitor`` for the API. Thread-safe: it reads the
    snapshot the monitor replaces after each pass, and caches thumbnails (at most
    ``thumbnail_cache`` of them and ``thumbnail_cache_bytes`` of their bytes).

    A thumbnail decodes at most ``thumbnail_max_decode`` bytes of pixels (after
    JPEG's reduction on load), and at most ``concurrent_decodes`` thumbnails are
    decoded at once, in threads of the catalog's own; further requests wait their
    turn. Those threads start on first use; :meth:`close` ends them.

    ``shown`` answers the keys of the runs TensorBoard shows (each run's
    ``in_tensorboard``); it is called once per listing, so it must be cheap."""

    def __init__(
        self,
        monitor: RunsMonitor,
        thumbnail_cache: int = 512,
        thumbnail_cache_bytes: int = 64 * 2**20,
        thumbnail_max_decode: int = 128 * 2**20,
        concurrent_decodes: int = 2,
        *,
        shown: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        if concurrent_decodes < 1:
            raise ValueError(f"concurrent_decodes must be >= 1, got {concurrent_decodes}")
        self.monitor = monitor
        self.shown = shown
        self._thumbs: collections.OrderedDict[tuple[Any, ...], ImageBytes] = (
            collections.OrderedDict()
        )
        self._thumb_limit = thumbnail_cache
        self._thumb_bytes_limit = thumbnail_cache_bytes
        self._thumb_bytes = 0
        self.thumbnail_max_decode = thumbnail_max_decode
        self._decoder = concurrent.futures.ThreadPoolExecutor(
            concurrent_decodes, thread_name_prefix="guildimg-thumbnail"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        """End the decoding threads: a decode in progress finishes, requests still
        waiting for one raise ``concurrent.futures.CancelledError``, and thumbnails
        not in the cache then raise RuntimeError. The rest of the catalog keeps working."""
        self._decoder.shutdown(wait=False, cancel_futures=True)

    # -- runs -------------------------------------------------------------

    def runs(self, image: str | None = None, q: str | None = None) -> list[rest.Run]:
        """Every run, newest first; with ``image``, only the runs that captured an
        image at that path (what the JupyterLab viewer offers to compare); with ``q``,
        only those :func:`run_matches` keeps."""
        views = self.monitor.views
        if image is not None:
            views = tuple(view for view in views if image in view.images)
        shown = self.shown()
        runs = [self._run_json(view, shown) for view in views]
        if q and q.strip():
            runs = [run for run in runs if run_matches(run, q)]
        return runs

    def _run_json(self, view: RunView, shown: Collection[str] | None = None) -> rest.Run:
        run = view.run
        key = run_key(run)
        return {
            "id": key,
            "run_id": run.id,
            "short_id": run.short_id,
            "name": view.name,
            "operation": run.operation,
            "label": run.label,
            "status": run.status,
            "started": _seconds(run.started),
            "stopped": _seconds(run.stopped),
            "kind": "guild" if run.kind == "guild" else "dir",
            "source": run.source,
            "image_count": len(view.images),
            "in_tensorboard": key in (self.shown() if shown is None else shown),
        }

    def run(self, key: str) -> rest.Run:
        """The run :meth:`find` finds, as ``GET runs`` lists it."""
        return self._run_json(self.find(key))

    def find(self, key: str) -> RunView:
        """The run ``key`` names: the run whose key (``id`` in ``GET runs``) is
        ``key``; else the run whose id (``run_id``: a Guild id, or a plain run's
        path) is ``key``; else the one run whose id starts with ``key``, from
        :data:`~jupyter_guildimg.rest.MIN_PREFIX` characters on. This is the only
        run lookup: the API's routes, the panel and ``%guildimg --run`` all use it.

        Raises NotFoundError when no run matches, :class:`AmbiguousRunError`
        (naming the candidates) when several do."""
        views = self.monitor.views
        for view in views:
            if run_key(view.run) == key:
                return view
        for candidates in (
            [view for view in views if view.run.id == key],
            [view for view in views if len(key) >= rest.MIN_PREFIX and view.run.id.startswith(key)],
        ):
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                names = ", ".join(repr(view.run.id) for view in candidates[:_MAX_NAMED])
                more = len(candidates) - _MAX_NAMED
                if more > 0:
                    names += f" and {more} more"
                raise AmbiguousRunError(f"several runs match {key!r}: {names}")
        raise NotFoundError(f"no run {key!r}")

    # -- images -----------------------------------------------------------

    def images(self, key: str) -> rest.RunImages:
        """The run and its images by path: each with ``revisions`` (newest first) and
        ``dropped``, how many of its oldest revisions the monitor removed under its
        ``max_revisions_per_image``."""
        view = self.find(key)
        return {
            "run": self._run_json(view),
            "images": [
                {
                    "path": path,
                    "dropped": view.dropped.get(path, 0),
                    "revisions": [self._revision_json(view, path, r) for r in reversed(revisions)],
                }
                for path, revisions in sorted(view.images.items())
            ],
        }

    def _revision_json(self, view: RunView, path: str, revision: Revision) -> rest.Revision:
        width, height, size = revision.width, revision.height, revision.size
        if width is None or height is None or size is None:
            # Found on disk after a restart: read its header once.
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
        return ImageBytes(data, content_type(data), counter)

    def thumbnail(self, key: str, path: str, width: int, revision: int | None = None) -> ImageBytes:
        """The image's first frame scaled to fit a square of ``thumb_width(width)``
        pixels (never enlarged), as JPEG for a JPEG image, else PNG; cached.

        Raises NotFoundError for an unknown run, image or revision, and
        ThumbnailError for a width out of range or an image that cannot be made
        into a thumbnail within the decode cap."""
        size = thumb_width(width)
        view = self.find(key)
        counter = self._counter(view, path, revision)
        cache_key = (view.images_dir, path, counter, size)
        cached = self._cached(cache_key)
        if cached is not None:
            return cached
        # Decoded in the catalog's own threads: that bounds how many decodes run at
        # once, and also where their memory is freed to (glibc keeps a freed block
        # in the arena of the thread that used it, one arena per thread).
        return self._decoder.submit(self._make_thumbnail, view, path, counter, size).result()

    def _make_thumbnail(self, view: RunView, path: str, counter: int, size: int) -> ImageBytes:
        cache_key = (view.images_dir, path, counter, size)
        cached = self._cached(cache_key)  # made while this request waited its turn?
        if cached is not None:
            return cached
        data = self._read_summary(view, path, counter).encoded_image_string
        try:
            scaled, decoded = _scale(data, size, self.thumbnail_max_decode)
        except ThumbnailError as e:
            log.debug("No thumbnail of %r in run %r: %s", path, view.name, e)
            raise ThumbnailError(f"no thumbnail of {path!r}: {e}") from None
        except _DECODE_ERRORS as e:
            # The monitor checked these bytes when it captured them: unexpected.
            log.warning("Thumbnail of %r in run %r failed", path, view.name, exc_info=True)
            raise ThumbnailError(f"no thumbnail of {path!r}: undecodable ({e})") from None
        if decoded >= _TRIM_AFTER and _malloc_trim is not None:
            # Measured (benchmarks/thumbnails.py): without it the process keeps
            # about one decoded image per decoding thread after the thumbnails.
            _malloc_trim(0)
        thumb = ImageBytes(scaled, content_type(scaled), counter)
        self._store(cache_key, thumb)
        return thumb

    def _cached(self, cache_key: tuple[Any, ...]) -> ImageBytes | None:
        with self._lock:
            cached = self._thumbs.get(cache_key)
            if cached is not None:
                self._thumbs.move_to_end(cache_key)
            return cached

    def _store(self, cache_key: tuple[Any, ...], thumb: ImageBytes) -> None:
        with self._lock:
            previous = self._thumbs.pop(cache_key, None)
            if previous is not None:
                self._thumb_bytes -= len(previous.data)
            self._thumbs[cache_key] = thumb
            self._thumb_bytes += len(thumb.data)
            while self._thumbs and (
                len(self._thumbs) > self._thumb_limit or self._thumb_bytes > self._thumb_bytes_limit
            ):
                _key, evicted = self._thumbs.popitem(last=False)
                self._thumb_bytes -= len(evicted.data)

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
        """The image of one summary file. Both event forms read alike (the spec's, with
        step and wall_time 0, and ``revision_steps``'): only the tag and image are read,
        and a revision's time is its summary file's mtime, which both set to the image's."""
        file = os.path.join(view.images_dir, summary_file_name(counter, path_digest(path)))
        for event in read_events(file):
            for value in event.summary.value:
                if value.tag == path and value.HasField("image"):
                    return value.image
        raise NotFoundError(f"revision {counter} of {path!r} is no longer in the log dir")


def _libc_malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (gives freed heap memory back to the system), or None
    where the C library has none (musl, macOS, Windows)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _libc_malloc_trim()


def _scale(data: bytes, width: int, max_decode: int) -> tuple[bytes, int]:
    """``data``'s first frame scaled to fit ``width``×``width``, encoded, and the
    number of bytes its decoded pixels took. Pixels are
    decoded only once the decoded size is known to be within ``max_decode`` bytes;
    a JPEG is decoded at 1/2, 1/4 or 1/8 scale when that is still >= twice the
    thumbnail. Nothing decoded outlives the call (the scaled image replaces the
    decoded one inside ``image``, which is closed). Raises ThumbnailError when the
    decoded size is over ``max_decode``, Pillow's errors when the bytes do not decode."""
    with Image.open(io.BytesIO(data)) as image:
        full_width, full_height = image.size
        scale = min(width / full_width, width / full_height, 1.0)
        target = (max(1, round(full_width * scale)), max(1, round(full_height * scale)))
        if image.format == "JPEG":
            gap = (int(target[0] * _REDUCING_GAP), int(target[1] * _REDUCING_GAP))
            image.draft(None, gap)  # sets the size decoded; decodes nothing yet
        decoded = image.size[0] * image.size[1] * _PIXEL_BYTES.get(image.mode, 4)
        if decoded > max_decode:
            raise ThumbnailError(
                f"{full_width}×{full_height} px would take {decoded / 2**20:.0f} MiB to"
                f" decode, over the {max_decode / 2**20:.0f} MiB allowed for thumbnails"
            )
        # Pillow reduces by a whole factor first, then resamples the rest; the
        # thumbnail replaces the decoded pixels within `image`.
        image.thumbnail((width, width), reducing_gap=_REDUCING_GAP)
        return _encode(image, jpeg=image.format == "JPEG"), decoded


def _encode(frame: Image.Image, jpeg: bool) -> bytes:
    out = io.BytesIO()
    if jpeg and frame.mode in ("RGB", "L", "CMYK"):
        # A CMYK JPEG's thumbnail is an RGB JPEG: browsers show that the same way.
        (frame if frame.mode != "CMYK" else frame.convert("RGB")).save(out, "JPEG", quality=85)
    elif frame.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        frame.save(out, "PNG")
    else:
        frame.convert("RGBA").save(out, "PNG")
    return out.getvalue()
