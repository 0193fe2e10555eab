"""Thumbnails, bounded in memory.

A request's width is rounded up to one of :data:`THUMB_WIDTHS` (so a cache holds a
few sizes per image, not any number). JPEG is decoded already reduced (libjpeg's DCT
scaling, ``Image.draft``); an image whose decoded pixels would take more than the
caller's cap gets :class:`ThumbnailError` instead of being decoded (PNG, GIF and BMP
cannot be decoded reduced); the memory of a large decode is given back to the system
(glibc's ``malloc_trim``) as soon as the thumbnail is made; and
:class:`ThumbnailCache` is bounded by bytes as well as by count. How many decode at
once, and in which threads, is the caller's (:class:`~.catalog.Catalog`).
"""

from __future__ import annotations

import bisect
import collections
import ctypes
import io
import threading
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

from PIL import Image

__all__ = [
    "DECODE_ERRORS",
    "THUMB_MAX",
    "THUMB_MIN",
    "THUMB_WIDTHS",
    "ThumbnailCache",
    "ThumbnailError",
    "make_thumbnail",
    "thumb_width",
]

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
#: What Pillow raises for bytes it cannot decode.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class ThumbnailError(ValueError):
    """No thumbnail can be made: the width is outside ``THUMB_MIN``..``THUMB_MAX``,
    the image is too large to decode for one (the full image is still served), or
    its bytes do not decode. The message says which, for the user."""


def thumb_width(width: int) -> int:
    """The width a thumbnail asked at ``width`` is made at: the smallest of
    :data:`THUMB_WIDTHS` that is >= ``width``. ThumbnailError outside
    ``THUMB_MIN``..``THUMB_MAX``."""
    if not THUMB_MIN <= width <= THUMB_MAX:
        raise ThumbnailError(f"thumbnail width must be {THUMB_MIN} to {THUMB_MAX}, not {width}")
    return THUMB_WIDTHS[bisect.bisect_left(THUMB_WIDTHS, width)]


class _Thumbnail(Protocol):
    @property
    def data(self) -> bytes: ...


_T = TypeVar("_T", bound=_Thumbnail)


class ThumbnailCache(Generic[_T]):
    """Thumbnails (anything with ``data``, its bytes) by a key of the caller's, the
    least recently used dropped past ``entries`` of them or ``max_bytes`` of their
    bytes. Thread-safe."""

    def __init__(self, entries: int, max_bytes: int) -> None:
        self._items: collections.OrderedDict[Hashable, _T] = collections.OrderedDict()
        self._entries, self._max_bytes, self._bytes = entries, max_bytes, 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _T | None:
        with self._lock:
            thumb = self._items.get(key)
            if thumb is not None:
                self._items.move_to_end(key)
            return thumb

    def put(self, key: Hashable, thumb: _T) -> None:
        with self._lock:
            previous = self._items.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous.data)
            self._items[key] = thumb
            self._bytes += len(thumb.data)
            while self._items and (
                len(self._items) > self._entries or self._bytes > self._max_bytes
            ):
                _key, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.data)


def make_thumbnail(data: bytes, width: int, max_decode: int) -> bytes:
    """``data``'s first frame scaled to fit a square of ``width`` pixels (never
    enlarged), as JPEG for a JPEG image, else PNG. Raises :class:`ThumbnailError`
    when its decoded pixels would take more than ``max_decode`` bytes, one of
    :data:`DECODE_ERRORS` when the bytes do not decode."""
    scaled, decoded = _scale(data, width, max_decode)
    if decoded >= _TRIM_AFTER and _malloc_trim is not None:
        # Measured (benchmarks/thumbnails.py): without it the process keeps about one
        # decoded image per decoding thread after the thumbnails.
        _malloc_trim(0)
    return scaled


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
