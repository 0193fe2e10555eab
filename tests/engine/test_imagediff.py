"""The pixel difference of two images (jupyter_guildimg.engine.imagediff), on images
made with known differing pixels; every expected number is counted here pixel by
pixel, not with the module's own Pillow calls."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from jupyter_guildimg.engine.imagediff import (
    MAX_PIXELS,
    ImageDiffError,
    colour_of,
    diff_bytes,
    diff_images,
    top_of_map,
)

GREY = (128, 128, 128)


def base(size=(40, 30), colour=GREY, mode="RGB"):
    return Image.new(mode, size, colour)


def changed(image, pixels):
    image = image.copy()
    for xy, colour in pixels.items():
        image.putpixel(xy, colour)
    return image


def encoded(image, fmt="PNG"):
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def counted(a, b, threshold=0):
    """(differing, max, mean over all, mean over differing), pixel by pixel in RGBA."""
    a, b = a.convert("RGBA"), b.convert("RGBA")
    ds = [
        max(abs(p - q) for p, q in zip(a.getpixel(xy), b.getpixel(xy), strict=True))
        for xy in ((x, y) for x in range(a.width) for y in range(a.height))
    ]
    over = [d for d in ds if d > threshold]
    return len(over), max(ds), sum(ds) / len(ds), (sum(over) / len(over) if over else 0.0)


def test_identical_images_differ_nowhere_and_the_picture_is_black():
    diff = diff_images(base(), base())
    assert (diff.differing, diff.total, diff.max_difference) == (0, 1200, 0)
    assert diff.mean_difference == diff.mean_differing == diff.percent == 0
    assert diff.image.mode == "RGB" and diff.image.size == (40, 30)
    assert diff.image.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert diff.summary() == "1,200 pixels, identical"
    assert not diff.scaled and diff.scale_note() == ""


def test_known_differing_pixels_are_counted_with_their_largest_channel_difference():
    pixels = {(0, 0): (138, 128, 128), (5, 7): (128, 0, 128), (39, 29): (255, 255, 255)}
    a, b = base(), changed(base(), pixels)
    diff = diff_images(a, b)
    differing, largest, mean, mean_over = counted(a, b)
    assert (differing, largest) == (3, 128)
    assert diff.differing == differing
    assert diff.max_difference == largest
    assert diff.mean_difference == pytest.approx(mean)
    assert diff.mean_differing == pytest.approx(mean_over) == (10 + 128 + 127) / 3
    assert diff.percent == pytest.approx(100 * 3 / 1200)
    assert diff.summary() == (
        "3 of 1,200 pixels differ (0.25 %) · max difference 128 · mean 0.22 "
        "(over differing pixels 88.33)"
    )
    # Black exactly where the images are equal, a colour wherever they differ.
    for xy in ((x, y) for x in range(40) for y in range(30)):
        assert (diff.image.getpixel(xy) != (0, 0, 0)) == (xy in pixels), xy


def test_the_difference_is_symmetric():
    a, b = base(), changed(base(), {(3, 3): (0, 255, 0)})
    one, other = diff_images(a, b), diff_images(b, a)
    assert (one.differing, one.max_difference) == (other.differing, other.max_difference)
    assert one.image.tobytes() == other.image.tobytes()


def test_amplification_maps_the_largest_difference_to_the_top_of_the_colour_map():
    a = base()
    b = changed(a, {(1, 1): (129, 128, 128), (2, 2): (148, 128, 128)})  # d = 1 and 20
    auto = diff_images(a, b)
    assert auto.gain == pytest.approx(255 / 20) and top_of_map(auto.gain) == 20
    assert auto.image.getpixel((2, 2)) == colour_of(1.0)  # the largest: the top
    smallest = auto.image.getpixel((1, 1))
    assert smallest == colour_of(1 / 20) and sum(smallest) > 100  # visible, not near black
    fixed = diff_images(a, b, amplify=4)
    assert fixed.gain == 4 and top_of_map(4) == 64
    assert fixed.image.getpixel((2, 2)) == colour_of(80 / 255)
    # Brighter for a larger difference, all along the map.
    brightness = [sum(colour_of(i / 10)) for i in range(11)]
    assert brightness == sorted(brightness) and len(set(brightness)) == 11


def test_a_tolerance_ignores_small_differences():
    a = base()
    b = changed(a, {(1, 1): (131, 128, 128), (2, 2): (200, 128, 128)})  # d = 3 and 72
    diff = diff_images(a, b, threshold=3)
    assert (diff.differing, diff.max_difference) == (1, 72)
    assert diff.mean_differing == 72 and diff.image.getpixel((1, 1)) == (0, 0, 0)
    assert counted(a, b, threshold=3)[0] == 1
    quiet = diff_images(a, changed(a, {(1, 1): (131, 128, 128)}), threshold=3)
    assert quiet.summary() == "1,200 pixels, none differ by more than 3"
    with pytest.raises(ValueError, match="threshold must be between 0 and 254"):
        diff_images(a, b, threshold=255)
    with pytest.raises(ValueError, match="amplify must be above 0"):
        diff_images(a, b, amplify=0)


def test_transparency_and_other_modes_count():
    rgba = base(mode="RGBA", colour=(128, 128, 128, 255))
    seethrough = changed(rgba, {(4, 4): (128, 128, 128, 55)})
    diff = diff_images(rgba, seethrough)
    assert (diff.differing, diff.max_difference) == (1, 200)
    # Grey and palette images compare with RGB ones by their colours.
    grey = base(mode="L", colour=128)
    assert diff_images(grey, base()).differing == 0
    palette = base().convert("P", palette=Image.Palette.ADAPTIVE)
    assert diff_images(palette, changed(base(), {(0, 0): (0, 0, 0)})).differing == 1
    # 16-bit grey is scaled to 8 bits: 0x8000 is 128.
    deep = Image.new("I;16", (40, 30), 0x8000)
    assert diff_images(deep, grey).differing == 0


def test_images_of_different_sizes_are_compared_at_the_smaller_size():
    small = changed(base(), {(10, 10): (255, 0, 0), (20, 5): (0, 0, 255)})
    large = base().resize((80, 60), Image.Resampling.NEAREST)  # the same picture, twice as big
    diff = diff_images(small, large)
    assert diff.scaled and diff.size == (40, 30)
    assert (diff.size_a, diff.size_b) == ((40, 30), (80, 60))
    assert diff.differing == 2  # a box filter halves a 2× picture exactly
    assert diff.scale_note() == "sizes differ (A 40×30, B 80×60): compared at 40×30"
    # Neither is enlarged: a wide and a tall image meet at the smaller of each side.
    stretched = diff_images(base((40, 10)), base((20, 30)))
    assert stretched.size == (20, 10) and stretched.differing == 0


def test_encoded_images_are_decoded_and_the_broken_one_is_named():
    pixels = {(7, 7): (0, 0, 0)}
    diff = diff_bytes(encoded(base()), encoded(changed(base(), pixels), "BMP"))
    assert diff.differing == 1 and diff.max_difference == 128
    gif = encoded(changed(base(), pixels), "GIF")
    assert diff_bytes(gif, encoded(changed(base(), pixels))).differing == 0
    with pytest.raises(ImageDiffError, match="image B cannot be read"):
        diff_bytes(encoded(base()), b"not an image")
    with pytest.raises(ImageDiffError, match="image A cannot be read"):
        diff_bytes(encoded(base())[:60], encoded(base()))


def test_an_image_too_big_is_refused_before_it_is_decoded():
    side = int(MAX_PIXELS**0.5) + 1
    huge = encoded(Image.new("1", (side, side)))  # small as bytes, huge as pixels
    with pytest.raises(ImageDiffError, match=r"image A is too big to compare \(6325×6325 px"):
        diff_bytes(huge, encoded(base()))
