"""The pixel difference of two images: how many pixels differ and by how much, and
a picture of it (the absolute difference, amplified, through a colour map).

Pure image maths on Pillow and the standard library, so the notebook's comparison
and a server route can share it.

The contract of :func:`diff_images` (and :func:`diff_bytes`, which decodes first):

- Both images are brought to 8-bit RGBA first (palette and grey images expanded,
  16-bit grey scaled down to 8 bits, an animated image's first frame), so a change in
  any colour channel or in transparency counts.
- A pixel's difference ``d`` is the largest absolute difference among its four
  channels (0–255). It *differs* when ``d > threshold``.
- Images of different sizes are compared at a common scale: both are resampled
  (box filter) to the smaller width and the smaller height, so neither is ever
  enlarged (aspect ratios that differ are stretched). :attr:`ImageDiff.scaled` is
  then True and :meth:`ImageDiff.scale_note` says so in words.
- ``differing``/``total`` count pixels at the common size; ``max_difference`` is the
  largest ``d``; ``mean_difference`` the mean ``d`` over every pixel and
  ``mean_differing`` over the differing pixels only (0 when none differ).
- :attr:`ImageDiff.image` (RGB, the common size) is black exactly where a pixel does
  not differ; a differing pixel takes the colour map's colour at
  ``min(1, d * gain / 255)``, and the map starts at a visible dark purple, so the
  smallest difference shows. ``gain`` is ``amplify``, or by default
  ``255 / max_difference`` (the largest difference is the top of the map).
"""

from __future__ import annotations

import io
import itertools
import logging
import math
from dataclasses import dataclass

from PIL import Image, ImageChops, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "ImageDiff",
    "ImageDiffError",
    "colour_bar",
    "colour_of",
    "diff_bytes",
    "diff_images",
    "to_png",
    "top_of_map",
]

log = logging.getLogger(__name__)

#: The largest image (width × height) compared; a bigger one is refused before it is
#: decoded (below Pillow's own decompression-bomb limit).
MAX_PIXELS = 40_000_000

# The colour map: (position, colour) anchors, linearly interpolated. Dark purple to
# pale yellow, every step brighter than the last, and its start far enough from black
# that a pixel differing by 1 is still seen.
_ANCHORS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (48, 0, 96)),
    (0.35, (184, 32, 120)),
    (0.7, (250, 130, 24)),
    (1.0, (255, 255, 170)),
)
_BLACK = (0, 0, 0)


class ImageDiffError(ValueError):
    """An image that cannot be compared (not an image, broken, or too big)."""


@dataclass(frozen=True)
class ImageDiff:
    """Two images' difference (see the module's contract). ``size_a``/``size_b`` are
    the images' own sizes, ``size`` the common one they were compared at."""

    image: Image.Image
    size: tuple[int, int]
    size_a: tuple[int, int]
    size_b: tuple[int, int]
    differing: int
    total: int
    max_difference: int
    mean_difference: float
    mean_differing: float
    threshold: int
    gain: float

    @property
    def scaled(self) -> bool:
        """Whether an image was resampled to the common size."""
        return self.size_a != self.size or self.size_b != self.size

    @property
    def percent(self) -> float:
        """The differing pixels, in per cent of all pixels."""
        return 100.0 * self.differing / self.total if self.total else 0.0

    def scale_note(self) -> str:
        """ "" when both had the same size, else which image was scaled to what."""
        if not self.scaled:
            return ""
        size = _size_text(self.size)
        a, b = _size_text(self.size_a), _size_text(self.size_b)
        return f"sizes differ (A {a}, B {b}): compared at {size}"

    def summary(self) -> str:
        """One line: how many pixels differ and by how much."""
        if self.differing == 0:
            words = (
                "identical" if self.threshold == 0 else f"none differ by more than {self.threshold}"
            )
            return f"{self.total:,} pixels, {words}"
        return (
            f"{self.differing:,} of {self.total:,} pixels differ ({self.percent:.2f} %) · "
            f"max difference {self.max_difference} · mean {self.mean_difference:.2f} "
            f"(over differing pixels {self.mean_differing:.2f})"
        )


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def colour_of(position: float) -> tuple[int, int, int]:
    """The colour map at ``position`` (clamped to 0–1)."""
    position = min(1.0, max(0.0, position))
    for (left, low), (right, high) in itertools.pairwise(_ANCHORS):
        if position <= right:
            t = (position - left) / (right - left)
            r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(low, high, strict=True))
            return (r, g, b)
    return _ANCHORS[-1][1]


def colour_bar(width: int = 256, height: int = 12) -> Image.Image:
    """The colour map, left (smallest difference) to right (``255 / gain`` or more)."""
    bar = Image.new("RGB", (width, height))
    for x in range(width):
        colour = colour_of(x / max(1, width - 1))
        bar.paste(colour, (x, 0, x + 1, height))
    return bar


def to_png(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _rgba(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGBA (16-bit and 32-bit grey scaled down by 256)."""
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    if image.mode == "I":
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    return image if image.mode == "RGBA" else image.convert("RGBA")


def _open(data: bytes, which: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageDiffError(
                f"image {which} is too big to compare ({width}×{height} px, "
                f"more than {MAX_PIXELS:,} pixels)"
            )
        image.load()  # the first frame of an animation
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageDiffError(f"image {which} cannot be read: {e}") from None
    return image


def diff_bytes(
    a: bytes, b: bytes, *, threshold: int = 0, amplify: float | None = None
) -> ImageDiff:
    """:func:`diff_images` of two encoded images (PNG, JPEG, GIF, BMP, …).
    :class:`ImageDiffError` names the image ("A" or "B") that cannot be read or is
    over :data:`MAX_PIXELS`."""
    return diff_images(_open(a, "A"), _open(b, "B"), threshold=threshold, amplify=amplify)


def diff_images(
    a: Image.Image, b: Image.Image, *, threshold: int = 0, amplify: float | None = None
) -> ImageDiff:
    """The difference of ``a`` and ``b`` (the module's contract). ``threshold`` is
    0–254; ``amplify``, if given, is the gain (> 0)."""
    if not 0 <= threshold <= 254:
        raise ValueError(f"threshold must be between 0 and 254, not {threshold}")
    if amplify is not None and not amplify > 0:
        raise ValueError(f"amplify must be above 0, not {amplify}")
    size_a, size_b = a.size, b.size
    size = (min(size_a[0], size_b[0]), min(size_a[1], size_b[1]))
    if size[0] < 1 or size[1] < 1:
        raise ImageDiffError("an image has no pixels")
    rgba_a, rgba_b = _rgba(a), _rgba(b)
    if rgba_a.size != size:
        rgba_a = rgba_a.resize(size, Image.Resampling.BOX)
    if rgba_b.size != size:
        rgba_b = rgba_b.resize(size, Image.Resampling.BOX)
    channels = ImageChops.difference(rgba_a, rgba_b).split()
    per_pixel = channels[0]
    for channel in channels[1:]:
        per_pixel = ImageChops.lighter(per_pixel, channel)  # the largest channel's
    histogram = per_pixel.histogram()
    total = size[0] * size[1]
    differing = sum(histogram[threshold + 1 :])
    largest = max((d for d, count in enumerate(histogram) if count), default=0)
    weighted = sum(d * count for d, count in enumerate(histogram))
    over = sum(d * count for d, count in enumerate(histogram) if d > threshold)
    gain = amplify if amplify is not None else (255 / largest if largest else 1.0)
    lut = [_BLACK if d <= threshold else colour_of(min(1.0, d * gain / 255)) for d in range(256)]
    bands = [per_pixel.point([colour[i] for colour in lut]) for i in range(3)]
    return ImageDiff(
        image=Image.merge("RGB", bands),
        size=size,
        size_a=size_a,
        size_b=size_b,
        differing=differing,
        total=total,
        max_difference=largest,
        mean_difference=weighted / total,
        mean_differing=over / differing if differing else 0.0,
        threshold=threshold,
        gain=gain,
    )


def top_of_map(gain: float) -> int:
    """The difference the colour map's top stands for at ``gain`` (at least 1)."""
    return max(1, math.ceil(255 / gain))
