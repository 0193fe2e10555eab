"""prepare_image, sniff_format, is_image_name, mime_type and content_type.

Every image is made here with Pillow (or, where Pillow cannot write the case, built
chunk by chunk with zlib), so no binary test files are needed.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from jupyter_guildimg.engine.images import (
    SIGNATURE_BYTES,
    ImageError,
    ImageIncompleteError,
    PreparedImage,
    content_type,
    is_image_name,
    mime_type,
    prepare_image,
    sniff_format,
)

SIZE = (37, 23)  # not square, so a width/height swap shows


# --- making images ------------------------------------------------------------------


def noise(mode: str, size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    """An image of ``mode`` full of random pixels (so it does not compress to nothing)."""
    pixel_bytes = len(Image.new(mode, (1, 1)).tobytes())
    data = random.Random(seed).randbytes(pixel_bytes * size[0] * size[1])
    return Image.frombytes(mode, size, data)


def encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format, **params)
    return out.getvalue()


def animation(mode: str, image_format: str, frames: int = 3, **params: object) -> bytes:
    images = [noise(mode, seed=i) for i in range(frames)]
    return encode(
        images[0],
        image_format,
        save_all=True,
        append_images=images[1:],
        duration=100,
        loop=0,
        **params,
    )


def float_image() -> Image.Image:
    """Mode F, values from -1.5 (top left) to 2.5 (bottom right)."""
    width, height = SIZE
    count = width * height
    values = [-1.5 + 4.0 * i / (count - 1) for i in range(count)]
    return Image.frombytes("F", SIZE, struct.pack(f"<{count}f", *values))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def build_png(
    width: int, height: int, *, depth: int = 8, colour_type: int = 2, pixels: bytes = b""
) -> bytes:
    """A PNG assembled chunk by chunk: IHDR, one IDAT holding ``pixels`` (rows
    already prefixed with their filter byte), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(pixels))
        + png_chunk(b"IEND", b"")
    )


def png_rgba16() -> bytes:
    """16 bits per channel RGBA, which Pillow can read but not write."""
    width, height = SIZE
    rng = random.Random(0)
    rows = b"".join(b"\x00" + rng.randbytes(8 * width) for _ in range(height))
    return build_png(width, height, depth=16, colour_type=6, pixels=rows)


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- formats TensorBoard serves as they are -------------------------------------------

AS_IS = [
    # (id, bytes, format, colorspace)
    ("png-rgb", lambda: encode(noise("RGB"), "PNG"), "png", 3),
    ("png-rgba", lambda: encode(noise("RGBA"), "PNG"), "png", 4),
    ("png-grey", lambda: encode(noise("L"), "PNG"), "png", 1),
    ("png-grey-alpha", lambda: encode(noise("LA"), "PNG"), "png", 2),
    ("png-grey-trns", lambda: encode(noise("L"), "PNG", transparency=7), "png", 2),
    ("png-rgb-trns", lambda: encode(noise("RGB"), "PNG", transparency=(1, 2, 3)), "png", 4),
    ("png-palette", lambda: encode(noise("P"), "PNG"), "png", 3),
    ("png-palette-trns", lambda: encode(noise("P"), "PNG", transparency=0), "png", 4),
    ("png-grey-16bit", lambda: encode(noise("I;16"), "PNG"), "png", 1),
    ("png-rgba-16bit", png_rgba16, "png", 4),
    ("png-animated", lambda: animation("RGB", "PNG"), "png", 3),
    ("jpeg-rgb", lambda: encode(noise("RGB"), "JPEG"), "jpeg", 3),
    ("jpeg-grey", lambda: encode(noise("L"), "JPEG"), "jpeg", 1),
    ("jpeg-progressive", lambda: encode(noise("RGB"), "JPEG", progressive=True), "jpeg", 3),
    # Browsers show CMYK JPEG (as RGB): re-encoding it would change its pixels.
    ("jpeg-cmyk", lambda: encode(noise("CMYK"), "JPEG"), "jpeg", 3),
    ("gif", lambda: encode(noise("P"), "GIF"), "gif", 3),
    ("gif-animated", lambda: animation("P", "GIF"), "gif", 3),
    # A palette with a transparent entry is 4 bands, as for PNG (palette + tRNS) and as
    # for a re-encoded image (images._BANDS: P with "transparency" → 4).
    ("gif-transparent", lambda: encode(noise("P"), "GIF", transparency=0), "gif", 4),
    ("bmp-24bit", lambda: encode(noise("RGB"), "BMP"), "bmp", 3),
    ("bmp-32bit", lambda: encode(noise("RGBA"), "BMP"), "bmp", 4),
    ("bmp-palette", lambda: encode(noise("P"), "BMP"), "bmp", 3),
]


@pytest.mark.parametrize(
    ("make", "image_format", "colorspace"),
    [pytest.param(make, fmt, bands, id=name) for name, make, fmt, bands in AS_IS],
)
def test_served_formats_pass_through_unchanged(
    make: Callable[[], bytes], image_format: str, colorspace: int
) -> None:
    original = make()
    result = prepare_image(original)
    assert result.data == original
    # Plain values, so a failure does not print the whole PreparedImage.
    size, bands, reencoded = (result.width, result.height), result.colorspace, result.reencoded
    assert size == SIZE
    assert bands == colorspace
    assert result.format == result.source_format == image_format
    assert not reencoded
    assert mime_type(result.format) == f"image/{image_format}"
    # The bytes are a real image of that format and size (not just a header).
    image = open_image(original)
    assert image.format == image_format.upper()
    assert image.size == SIZE


def test_progressive_jpeg_is_really_progressive() -> None:
    # Guards the jpeg-progressive case above: Pillow wrote SOF2, not SOF0.
    data = encode(noise("RGB"), "JPEG", progressive=True)
    assert b"\xff\xc2" in data
    assert prepare_image(data).data == data


def test_animated_gif_keeps_every_frame() -> None:
    original = animation("P", "GIF", frames=4)
    result = prepare_image(original)
    assert result.data == original
    assert open_image(result.data).n_frames == 4


# --- formats that are re-encoded ------------------------------------------------------


def test_cmyk_jpeg_is_stored_byte_identical() -> None:
    red = Image.new("CMYK", SIZE, (0, 255, 255, 0))
    original = encode(red, "JPEG", quality=95)
    result = prepare_image(original)
    assert result.data == original
    assert (result.format, result.colorspace, result.reencoded) == ("jpeg", 3, False)
    image = open_image(result.data)
    assert image.mode == "CMYK"
    r, g, b = image.convert("RGB").getpixel((SIZE[0] // 2, SIZE[1] // 2))
    assert r > 230 and g < 25 and b < 25, (r, g, b)


def check_png(result: PreparedImage, source_format: str) -> Image.Image:
    assert result.format == "png"
    assert result.source_format == source_format
    assert result.reencoded
    assert mime_type(result.format) == "image/png"
    assert (result.width, result.height) == SIZE
    image = open_image(result.data)
    assert image.format == "PNG"
    assert image.size == SIZE
    return image


def test_lossy_webp_becomes_png() -> None:
    data = encode(noise("RGB"), "WEBP", quality=80)
    image = check_png(prepare_image(data), "webp")
    assert image.mode == "RGB"
    assert prepare_image(data).colorspace == 3


def test_lossless_webp_with_alpha_becomes_png_with_the_same_pixels() -> None:
    source = noise("RGBA")
    # exact: keep the colour of fully transparent pixels, so every byte can be compared.
    result = prepare_image(encode(source, "WEBP", lossless=True, exact=True))
    image = check_png(result, "webp")
    assert result.colorspace == 4
    assert image.mode == "RGBA"
    assert image.tobytes() == source.tobytes()


def test_animated_webp_becomes_animated_png() -> None:
    data = animation("RGB", "WEBP", frames=3)
    assert open_image(data).n_frames == 3
    image = check_png(prepare_image(data), "webp")
    assert image.n_frames == 3
    assert image.is_animated


def test_rgb_tiff_becomes_png_with_the_same_pixels() -> None:
    source = noise("RGB")
    result = prepare_image(encode(source, "TIFF"))
    image = check_png(result, "tiff")
    assert result.colorspace == 3
    assert image.convert("RGB").tobytes() == source.tobytes()


def test_compressed_tiff_becomes_png() -> None:
    source = noise("RGB")
    image = check_png(prepare_image(encode(source, "TIFF", compression="tiff_lzw")), "tiff")
    assert image.convert("RGB").tobytes() == source.tobytes()


def test_16bit_grey_tiff_becomes_16bit_png() -> None:
    source = noise("I;16")
    result = prepare_image(encode(source, "TIFF"))
    image = check_png(result, "tiff")
    assert result.colorspace == 1
    assert image.mode == "I;16"
    assert image.tobytes() == source.tobytes()


def test_float_tiff_becomes_grey_png_stretched_to_full_range() -> None:
    result = prepare_image(encode(float_image(), "TIFF"))
    image = check_png(result, "tiff")
    assert result.colorspace == 1
    assert image.mode == "L"
    # -1.5 (top left) shows black, 2.5 (bottom right) white, in between grey.
    assert image.getpixel((0, 0)) == 0
    assert image.getpixel((SIZE[0] - 1, SIZE[1] - 1)) == 255
    assert 100 < image.getpixel((SIZE[0] // 2, SIZE[1] // 2)) < 155


def grey32(low: int, high: int) -> Image.Image:
    """Mode I (32-bit signed grey), random values from ``low`` to ``high``."""
    rng = random.Random(0)
    values = [rng.randint(low, high) for _ in range(SIZE[0] * SIZE[1])]
    return Image.frombytes("I", SIZE, struct.pack(f"<{len(values)}i", *values))


def pixels(image: Image.Image) -> list[object]:
    """Every pixel's value (a palette image's as RGBA), row by row; works for every
    mode, 16-bit byte orders included."""
    if image.mode == "P":
        image = image.convert("RGBA")
    width, height = image.size
    return [image.getpixel((x, y)) for y in range(height) for x in range(width)]


# Every mode PNG can hold keeps its values. PNG has no CMYK, YCbCr, LAB or float:
# those are converted, which is not checked here.
LOSSLESS_TIFF = [
    ("rgb", lambda: noise("RGB")),
    ("rgba", lambda: noise("RGBA")),
    ("grey", lambda: noise("L")),
    ("grey-alpha", lambda: noise("LA")),
    ("bilevel", lambda: noise("1")),
    ("palette", lambda: noise("P")),
    ("grey-16bit", lambda: noise("I;16")),
    ("grey-16bit-big-endian", lambda: noise("I;16B")),
    ("grey-32bit-within-16bit", lambda: grey32(0, 65535)),
]


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in LOSSLESS_TIFF])
def test_reencoded_tiff_keeps_the_pixels_of_the_file(make: Callable[[], Image.Image]) -> None:
    data = encode(make(), "TIFF")
    source = open_image(data)
    image = check_png(prepare_image(data), "tiff")
    assert pixels(image) == pixels(source)


def test_32bit_grey_tiff_with_negative_values_is_stretched_not_clipped() -> None:
    # PNG cannot hold negative values: stretched to 8 bits like float, instead of every
    # negative value turning black.
    image = check_png(prepare_image(encode(grey32(-1000, 1000), "TIFF")), "tiff")
    assert image.mode == "L"
    assert image.getextrema() == (0, 255)


# --- files still being written --------------------------------------------------------


def misjudged_cuts(data: bytes, tolerated: Callable[[int], bool] = lambda cut: False) -> dict:
    """Every length ``data`` can be cut to for which prepare_image does not raise
    ImageIncompleteError, grouped by what happened instead. A plain ImageError at a
    ``tolerated`` cut is not counted."""
    found: dict[str, list[int]] = {}
    for cut in range(1, len(data)):
        try:
            prepare_image(data[:cut])
        except ImageIncompleteError:
            continue
        except ImageError as e:
            if tolerated(cut):
                continue
            outcome = "ImageError: " + re.sub(r" at 0x[0-9a-f]+", "", str(e))
        except Warning as w:  # the warnings filter turns an escaped warning into this
            outcome = f"warning escaped: {w!r}"
        else:
            outcome = "accepted as a complete image"
        found.setdefault(outcome, []).append(cut)
    return found


SMALL = (24, 16)

TRUNCATED = [
    ("png-rgb", lambda: encode(noise("RGB", SMALL), "PNG")),
    ("png-palette-trns", lambda: encode(noise("P", SMALL), "PNG", transparency=0)),
    ("png-16bit", lambda: encode(noise("I;16", SMALL), "PNG")),
    ("jpeg", lambda: encode(noise("RGB", SMALL), "JPEG")),
    ("jpeg-progressive", lambda: encode(noise("RGB", SMALL), "JPEG", progressive=True)),
    ("jpeg-cmyk", lambda: encode(noise("CMYK", SMALL), "JPEG")),
    ("gif", lambda: encode(noise("P", SMALL), "GIF")),
    ("gif-animated", lambda: animation("P", "GIF", frames=2)),
    ("webp-lossy", lambda: encode(noise("RGB", SMALL), "WEBP", quality=80)),
    ("webp-lossless", lambda: encode(noise("RGBA", SMALL), "WEBP", lossless=True)),
    ("webp-animated", lambda: animation("RGB", "WEBP", frames=2)),
]


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in TRUNCATED])
def test_truncated_anywhere_is_incomplete(make: Callable[[], bytes]) -> None:
    data = make()
    prepare_image(data)  # complete: accepted
    assert misjudged_cuts(data) == {}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: encode(noise("RGB", SMALL), "BMP"), id="24bit"),
        pytest.param(lambda: encode(noise("RGBA", SMALL), "BMP"), id="32bit"),
    ],
)
def test_truncated_bmp_is_incomplete(make: Callable[[], bytes]) -> None:
    data = make()
    prepare_image(data)
    # Tolerated: a single b"B" is reported as "not an image". One byte cannot tell a
    # BMP being written from a text file starting with "B".
    assert misjudged_cuts(data, tolerated=lambda cut: cut == 1) == {}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: encode(noise("RGB", SMALL), "TIFF"), id="rgb"),
        pytest.param(lambda: encode(noise("I;16", SMALL), "TIFF"), id="grey-16bit"),
        pytest.param(lambda: encode(noise("F", SMALL), "TIFF"), id="float"),
        pytest.param(lambda: encode(noise("RGB", SMALL), "TIFF", compression="tiff_lzw"), id="lzw"),
    ],
)
def test_truncated_tiff_is_incomplete_inside_its_pixels(make: Callable[[], bytes]) -> None:
    data = make()
    prepare_image(data)
    tags = open_image(data).tag_v2
    start = min(tags[273])  # StripOffsets
    end = max(o + n for o, n in zip(tags[273], tags[279], strict=True))  # + StripByteCounts
    # Tolerated, as a plain ImageError: cuts outside the pixel strips. images.py checks
    # only the header and the first directory's entries; a cut inside the values those
    # entries point to (or within the first 3 bytes, "II*", which are not checked as a
    # signature prefix) is reported by Pillow as "cannot identify image file". A cut
    # inside the pixels must always be incomplete, and no cut may be accepted or let a
    # Pillow warning escape.
    assert misjudged_cuts(data, tolerated=lambda cut: not start < cut < end) == {}


def test_gif_cut_just_after_an_inner_trailer_byte_is_incomplete() -> None:
    # 0x3B (";", the GIF trailer) also occurs inside image data: a GIF still being
    # written can end on such a byte.
    data = encode(noise("P"), "GIF")
    inner = [i + 1 for i, byte in enumerate(data[:-1]) if byte == 0x3B and i > 13]
    assert inner
    accepted = []
    for cut in inner:
        try:
            prepare_image(data[:cut])
        except ImageIncompleteError:
            continue
        accepted.append(cut)
    assert accepted == [], f"GIF of {len(data)} bytes cut at these lengths was accepted"


def test_jpeg_cut_just_after_its_embedded_thumbnail_is_incomplete() -> None:
    # A camera JPEG carries a thumbnail (a whole JPEG, EOI marker included) in its
    # APP1 segment, before the main image's frame header.
    thumbnail = encode(noise("RGB", (8, 8)), "JPEG")
    data = encode(noise("RGB"), "JPEG", exif=b"Exif\x00\x00" + thumbnail)
    cut = data.index(thumbnail) + len(thumbnail)
    assert data[:cut].endswith(b"\xff\xd9")
    with pytest.raises(ImageIncompleteError):
        prepare_image(data[:cut])


# --- broken files ---------------------------------------------------------------------


def test_empty_file_is_incomplete() -> None:
    # An empty file is one just created, about to be written.
    with pytest.raises(ImageIncompleteError, match="empty"):
        prepare_image(b"")


SNIFFED = [
    ("png", lambda: encode(noise("RGB"), "PNG")),
    ("jpeg", lambda: encode(noise("RGB"), "JPEG")),
    ("gif", lambda: encode(noise("P"), "GIF")),
    ("bmp", lambda: encode(noise("RGB"), "BMP")),
    ("webp", lambda: encode(noise("RGB"), "WEBP")),
    ("tiff", lambda: encode(noise("RGB"), "TIFF")),
]


@pytest.mark.parametrize(
    ("image_format", "make"), [pytest.param(fmt, make, id=fmt) for fmt, make in SNIFFED]
)
def test_the_signature_alone_names_the_format(image_format: str, make: Callable[[], bytes]) -> None:
    head = make()[:SIGNATURE_BYTES]
    assert sniff_format(head) == image_format
    with pytest.raises(ImageIncompleteError):
        prepare_image(head)  # only the whole file says whether it is complete


def test_a_signature_cut_short_is_incomplete_and_text_is_not_an_image() -> None:
    with pytest.raises(ImageIncompleteError):
        sniff_format(b"\x89PN")
    with pytest.raises(ImageIncompleteError):
        sniff_format(b"")
    with pytest.raises(ImageError, match="unknown file signature") as caught:
        sniff_format(b"epoch 1: loss")
    assert not isinstance(caught.value, ImageIncompleteError)


def not_incomplete(data: bytes) -> ImageError:
    with pytest.raises(ImageError) as caught:
        prepare_image(data)
    assert not isinstance(caught.value, ImageIncompleteError)
    return caught.value


def test_random_bytes_are_not_an_image() -> None:
    data = random.Random(0).randbytes(2000)
    assert str(not_incomplete(data)) == "not an image (unknown file signature)"


def test_text_named_png_is_not_an_image(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("epoch 1: loss 0.25\n" * 40)
    assert is_image_name(path.name)
    assert "not an image" in str(not_incomplete(path.read_bytes()))


def test_png_without_ihdr_is_broken() -> None:
    data = encode(noise("RGB"), "PNG")
    ihdr_end = 8 + 12 + 13
    assert data[12:16] == b"IHDR"
    assert "IHDR" in str(not_incomplete(data[:8] + data[ihdr_end:]))


def test_jpeg_without_frame_header_is_broken() -> None:
    comment_only = b"\xff\xd8" + b"\xff\xfe\x00\x07hello" + b"\xff\xd9"
    assert "frame header" in str(not_incomplete(comment_only))


# --- decompression bombs --------------------------------------------------------------


@pytest.fixture
def pillow_never_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open the image")

    monkeypatch.setattr(Image, "open", refuse)


@pytest.mark.usefixtures("pillow_never_opens")
def test_png_header_claiming_too_many_pixels_is_refused() -> None:
    data = build_png(100_000, 100_000)  # 10^10 pixels in 69 bytes
    assert len(data) < 100
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None and limit < 100_000 * 100_000
    with pytest.raises(ImageError, match=f"limit of {limit}\\b") as caught:
        prepare_image(data)
    assert not isinstance(caught.value, ImageIncompleteError)


BOMBS = [
    ("png", lambda: encode(noise("RGB"), "PNG")),
    ("jpeg", lambda: encode(noise("RGB"), "JPEG")),
    ("jpeg-cmyk", lambda: encode(noise("CMYK"), "JPEG")),
    ("gif", lambda: encode(noise("P"), "GIF")),
    ("bmp", lambda: encode(noise("RGB"), "BMP")),
    ("webp-lossy", lambda: encode(noise("RGB"), "WEBP")),
    ("webp-lossless", lambda: encode(noise("RGBA"), "WEBP", lossless=True)),
    ("webp-animated", lambda: animation("RGB", "WEBP")),
    ("tiff", lambda: encode(noise("RGB"), "TIFF")),
    ("tiff-float", lambda: encode(float_image(), "TIFF")),
]


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in BOMBS])
def test_image_over_the_pixel_limit_is_refused_before_decoding(
    make: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch, pillow_never_opens: None
) -> None:
    data = make()
    # One pixel over: Pillow itself would only warn (DecompressionBombWarning, an error
    # under this suite's warnings filter) -- and it must not get that far.
    limit = SIZE[0] * SIZE[1] - 1
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError, match=f"limit of {limit}\\b") as caught:
        prepare_image(data)
    assert not isinstance(caught.value, ImageIncompleteError)


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in BOMBS])
def test_image_exactly_at_the_pixel_limit_is_accepted(
    make: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SIZE[0] * SIZE[1])
    result = prepare_image(data)
    assert (result.width, result.height) == SIZE


# --- names and content types ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a.gif",
        "a.jpeg",
        "a.jpg",
        "a.png",
        "a.tif",
        "a.tiff",
        "a.webp",
        "a.bmp",
        "A.GIF",
        "Sample.JPEG",
        "x.JpG",
        "grid.PNG",
        "scan.TIF",
        "scan.TiFf",
        "photo.WebP",
        "old.BMP",
        "epoch.10.png",
        ".hidden.png",
    ],
)
def test_image_names(name: str) -> None:
    assert is_image_name(name)


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "png", "JPG", "a.png.txt", "a.pngx", "a_png", "a.svg", "a.", "", "a.jpeg~"],
)
def test_not_image_names(name: str) -> None:
    assert not is_image_name(name)


@pytest.mark.parametrize(
    ("image_format", "expected"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("gif", "image/gif"), ("bmp", "image/bmp")],
)
def test_mime_type(image_format: str, expected: str) -> None:
    assert mime_type(image_format) == expected


@pytest.mark.parametrize(
    ("image_format", "make"), [pytest.param(fmt, make, id=fmt) for fmt, make in SNIFFED]
)
def test_the_content_type_of_a_summarys_bytes(image_format: str, make: Callable[[], bytes]) -> None:
    prepared = prepare_image(make())
    assert content_type(prepared.data) == mime_type(prepared.format)
    assert content_type(prepared.data) == (
        "image/png" if prepared.reencoded else mime_type(image_format)
    )


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PN"])
def test_bytes_no_summary_holds_are_called_png(data: bytes) -> None:
    assert content_type(data) == "image/png"
