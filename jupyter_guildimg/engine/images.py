"""Image files: which names are images, whether a file is complete, and the bytes
TensorBoard will show.

PNG, JPEG (CMYK JPEG included: browsers show it), GIF and BMP go into summaries
exactly as written (TensorBoard's image plugin serves them as they are); their
size comes from the header, nothing is decoded. TIFF and WebP are re-encoded
with Pillow to PNG, which is lossless: the stored image decodes to the pixels
Pillow reads from the file (except where PNG has no such mode: CMYK, YCbCr and
LAB become RGB, and float or 32-bit grey beyond 16 bits is stretched to 8 bits).
Every format's size is read from its header before Pillow sees it, so a
decompression bomb is refused without being opened.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from typing import cast

from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_MIME",
    "SIGNATURE_BYTES",
    "ImageError",
    "ImageIncompleteError",
    "PreparedImage",
    "content_type",
    "is_image_name",
    "mime_type",
    "prepare_image",
    "sniff_format",
]

IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})

#: The formats a summary holds (:attr:`PreparedImage.format`) and their content types.
IMAGE_MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Longer than one byte: a lone "B" or "I" is more likely text than a cut image.
_SIGNATURES = (
    _PNG_SIGNATURE,
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"II*\x00",
    b"MM\x00*",
)
# The most bytes sniff_format looks at (WebP: "RIFF", a size, "WEBP").
SIGNATURE_BYTES = 12
_PNG_BANDS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type → bands
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class ImageError(ValueError):
    """The file is not an image TensorBoard can be given (broken, unknown, too big)."""


class ImageIncompleteError(ImageError):
    """The file ends early: most likely it is still being written."""


@dataclass(frozen=True)
class PreparedImage:
    """What goes into an image summary. ``format`` names the bytes in ``data``
    (``png``, ``jpeg``, ``gif`` or ``bmp``); ``colorspace`` is the band count."""

    data: bytes
    width: int
    height: int
    colorspace: int
    format: str
    source_format: str
    reencoded: bool = False


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def mime_type(image_format: str) -> str:
    """The content type of a :attr:`PreparedImage.format`."""
    return IMAGE_MIME[image_format]


def content_type(data: bytes) -> str:
    """The content type of an image a summary holds (:attr:`PreparedImage.data`),
    told by its signature. Bytes no summary holds (no signature of
    :data:`IMAGE_MIME`'s formats) are called PNG, the format re-encoded images
    take, so the answer is always a type browsers show."""
    try:
        image_format = sniff_format(data[:SIGNATURE_BYTES])
    except ImageError:
        return IMAGE_MIME["png"]
    return IMAGE_MIME.get(image_format, IMAGE_MIME["png"])


def prepare_image(data: bytes) -> PreparedImage:
    """The summary form of an image file's bytes.

    Raises :class:`ImageIncompleteError` for a file that ends early (an empty
    file included) and :class:`ImageError` for anything that is not a usable
    image.
    """
    image_format, width, height, bands = _read_header(data)
    if width <= 0 or height <= 0:
        raise ImageError(f"{image_format} header gives an empty size ({width}×{height})")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageError(
            f"{width}×{height} pixels is over Pillow's limit of {limit} (a decompression bomb?)"
        )
    if image_format in IMAGE_MIME:
        if image_format == "jpeg" and bands == 4:
            # CMYK (or YCCK) JPEG: passed as it is, since browsers show it and
            # re-encoding would change its pixels; it is shown as RGB.
            bands = 3
        return PreparedImage(data, width, height, bands, image_format, image_format)
    return _reencode(data, image_format)


def sniff_format(head: bytes) -> str:
    """The image format a file's first bytes announce: ``png``, ``jpeg``, ``gif``,
    ``bmp``, ``webp`` or ``tiff``. ``head`` needs at most :data:`SIGNATURE_BYTES`
    bytes (fewer only when the file is shorter); nothing past the signature is
    checked.

    Raises :class:`ImageIncompleteError` when ``head`` is empty or could still
    become a signature, :class:`ImageError` when it cannot.
    """
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if not head:
        raise ImageIncompleteError("empty file")
    if any(len(head) < len(sig) and sig.startswith(head) for sig in _SIGNATURES) or (
        head[:4] == b"RIFF" and len(head) < 12
    ):
        raise ImageIncompleteError("file ends inside the image signature")
    raise ImageError("not an image (unknown file signature)")


def _read_header(data: bytes) -> tuple[str, int, int, int]:
    """(format, width, height, bands), checking the file is complete."""
    return _HEADER_READERS[sniff_format(data)](data)


def _png_header(data: bytes) -> tuple[str, int, int, int]:
    # Walk the chunk lengths (no decoding) up to IEND, so a file still being
    # written is caught wherever it stops.
    pos, size, header = 8, len(data), None
    has_transparency = False
    while True:
        if pos + 8 > size:
            raise ImageIncompleteError("PNG ends before its IEND chunk")
        length, chunk = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF:
            raise ImageError("PNG chunk length is invalid")
        end = pos + 12 + length
        if end > size:
            raise ImageIncompleteError("PNG ends inside a chunk")
        if chunk == b"IHDR":
            if length < 13:
                raise ImageError("PNG IHDR chunk is too short")
            header = struct.unpack_from(">IIBB", data, pos + 8)
        elif chunk == b"tRNS":
            has_transparency = True
        elif chunk == b"IEND":
            break
        pos = end
    if header is None:
        raise ImageError("PNG has no IHDR chunk")
    width, height, _depth, colour_type = header
    if colour_type not in _PNG_BANDS:
        raise ImageError(f"PNG colour type {colour_type} is invalid")
    bands = _PNG_BANDS[colour_type]
    if has_transparency and bands in (1, 3):
        bands += 1
    return "png", width, height, bands


def _jpeg_header(data: bytes) -> tuple[str, int, int, int]:
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageIncompleteError("JPEG ends before its EOI marker")
    pos, size = 2, len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:
            raise ImageError("JPEG marker structure is broken")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            raise ImageError("JPEG has no frame header")
        if pos + 4 > size:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if pos + 2 + length > size:
            # An EOI seen at the end belonged to something embedded (an EXIF
            # thumbnail) in a segment that is not complete yet.
            raise ImageIncompleteError("JPEG ends inside a marker segment")
        if marker in _JPEG_SOF and length >= 8:
            height, width, components = struct.unpack_from(">HHB", data, pos + 5)
            return "jpeg", width, height, components
        pos += 2 + length
    # The segments ran to the end of the data without a frame header: the EOI
    # seen at the end was an embedded thumbnail's.
    raise ImageIncompleteError("JPEG ends before its frame header")


def _gif_header(data: bytes) -> tuple[str, int, int, int]:
    # Walk the blocks to the trailer: the trailer byte 0x3B also occurs inside
    # image data, so the last byte alone cannot tell a complete file.
    size = len(data)
    if size < 13:
        raise ImageIncompleteError("GIF ends inside its header")
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    transparent, first_frame = False, True
    while pos < size:
        block = data[pos]
        if block == 0x3B:
            return "gif", width, height, 4 if transparent else 3
        if block == 0x21:  # extension: label, then sub-blocks
            if pos + 2 > size:
                break
            # Only the first frame's graphic control says whether the image is
            # transparent; later frames use transparency to encode differences.
            if data[pos + 1] == 0xF9 and first_frame and pos + 4 <= size:
                transparent = bool(data[pos + 3] & 1)
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW data
            if pos + 10 > size:
                break
            first_frame = False
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            raise ImageError(f"GIF block type {block:#04x} is invalid")
    raise ImageIncompleteError("GIF ends before its trailer")


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The position after a chain of sub-blocks ending with an empty one (or past
    the end of ``data`` if the chain is cut)."""
    size = len(data)
    while pos < size:
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos
    return size + 1


def _bmp_header(data: bytes) -> tuple[str, int, int, int]:
    if len(data) < 26:
        raise ImageIncompleteError("BMP ends inside its header")
    file_size, _reserved, pixels_at, dib_size = struct.unpack_from("<IIII", data, 2)
    if dib_size == 12:
        width, height, _planes, bits = struct.unpack_from("<HHHH", data, 18)
    elif dib_size >= 40:
        if len(data) < 30:
            raise ImageIncompleteError("BMP ends inside its header")
        width, height, _planes, bits = struct.unpack_from("<iiHH", data, 18)
    else:
        raise ImageError(f"BMP header size {dib_size} is not supported")
    height = abs(height)  # negative height: rows stored top-down
    expected = file_size or pixels_at + ((width * bits + 31) // 32) * 4 * height
    if len(data) < expected:
        raise ImageIncompleteError("BMP is shorter than its header says")
    return "bmp", width, height, 4 if bits == 32 else 3


def _webp_header(data: bytes) -> tuple[str, int, int, int]:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if len(data) < 8 + riff_size or len(data) < 30:
        raise ImageIncompleteError("WebP is shorter than its RIFF header says")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        return "webp", width & 0x3FFF, height & 0x3FFF, 3
    if chunk == b"VP8L":
        (bits,) = struct.unpack_from("<I", data, 21)
        alpha = bool(bits >> 28 & 1)
        return "webp", (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, 4 if alpha else 3
    if chunk == b"VP8X":
        flags = data[20]
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return "webp", width, height, 4 if flags & 0x10 else 3
    raise ImageError("WebP has an unknown first chunk")


def _tiff_header(data: bytes) -> tuple[str, int, int, int]:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        raise ImageIncompleteError("TIFF ends inside its header")
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd + 2 > len(data):
        raise ImageIncompleteError("TIFF ends before its first directory")
    (count,) = struct.unpack_from(order + "H", data, ifd)
    if ifd + 2 + 12 * count > len(data):
        raise ImageIncompleteError("TIFF ends inside its first directory")
    tags = {}
    for i in range(count):
        tag, kind, _n = struct.unpack_from(order + "HHI", data, ifd + 2 + 12 * i)
        fmt = {3: "H", 4: "I"}.get(kind)
        if fmt is not None:
            tags[tag] = struct.unpack_from(order + fmt, data, ifd + 10 + 12 * i)[0]
    if 256 not in tags or 257 not in tags:
        raise ImageError("TIFF has no image size")
    return "tiff", tags[256], tags[257], tags.get(277, 1)


_HEADER_READERS = {
    "png": _png_header,
    "jpeg": _jpeg_header,
    "gif": _gif_header,
    "bmp": _bmp_header,
    "webp": _webp_header,
    "tiff": _tiff_header,
}

_TRUNCATION = re.compile(r"[Tt]runcat|[Ee]xpecting to read")

# What PNG stores as it is, by Pillow mode: keep these, convert the rest.
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
_BANDS = {"1": 1, "L": 1, "I;16": 1, "LA": 2, "RGB": 3, "RGBA": 4}
# 16-bit grey in another byte order → the raw mode that reads its bytes as I;16.
_GREY16_RAW = {"I;16B": "I;16B", "I;16L": "I;16", "I;16N": "I;16N"}
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def _reencode(data: bytes, source_format: str) -> PreparedImage:
    """TIFF or WebP as PNG, with the pixels Pillow decodes (see the module doc)."""
    try:
        # Pillow warns (instead of raising) on some truncated TIFFs. The warnings
        # filter is process-wide, so other threads' warnings are also caught for
        # these few milliseconds; re-encoding is rare (TIFF and WebP only).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if any(_TRUNCATION.search(str(w.message)) for w in caught):
                    raise ImageIncompleteError(f"{source_format.upper()} data ends early")
                out = io.BytesIO()
                if source_format == "webp" and getattr(image, "n_frames", 1) > 1:
                    # Animated WebP stays animated as APNG, which browsers play.
                    converted: Image.Image = image
                    image.save(out, "PNG", save_all=True)
                else:
                    converted = _png_mode(image)
                    converted.save(out, "PNG")
                bands = _BANDS.get(converted.mode, 4 if "transparency" in converted.info else 3)
                width, height = converted.size
    except ImageIncompleteError:
        raise
    except (EOFError, OSError) as e:
        if "truncated" in str(e) or isinstance(e, EOFError):
            raise ImageIncompleteError(f"{source_format.upper()} data ends early") from e
        raise ImageError(f"cannot decode {source_format.upper()}: {e}") from e
    except (UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise ImageError(f"cannot decode {source_format.upper()}: {e}") from e
    return PreparedImage(out.getvalue(), width, height, bands, "png", source_format, reencoded=True)


def _png_mode(image: Image.Image) -> Image.Image:
    """``image`` in a mode PNG stores, changing no pixel value where PNG can hold it."""
    if image.mode in _PNG_MODES:
        return image
    if image.mode in _GREY16_RAW:
        # Pillow does not convert between 16-bit byte orders: read the bytes again.
        return Image.frombytes("I;16", image.size, image.tobytes(), "raw", _GREY16_RAW[image.mode])
    if image.mode == "I":
        low, high = cast("tuple[float, float]", image.getextrema())  # one band
        return image.convert("I;16") if low >= 0 and high < 65536 else _scaled(image)
    if image.mode == "F":
        return _scaled(image)
    if image.mode == "La":
        return image.convert("LA")  # un-premultiplied; Pillow has no La → RGBA
    # "A" is not alpha in LAB: only these modes (and a palette's) carry transparency.
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _scaled(image: Image.Image) -> Image.Image:
    """Float or 32-bit grey stretched to 8 bits so it shows as an image at all."""
    low, high = cast("tuple[float, float]", image.getextrema())  # one band
    span = (high - low) or 1
    return image.point(lambda v: (v - low) * 255.0 / span).convert("L")
