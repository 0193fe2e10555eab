import os
import struct
import zlib

epochs = 2
lr = 0.01
augment = False
optimizer = "adam"


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_png(path, pixel, size=4):
    """A size x size PNG of one colour: pixel is (grey,) or (r, g, b)."""
    colour_type = {1: 0, 3: 2}[len(pixel)]
    rows = (b"\x00" + bytes(pixel) * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", header))
        f.write(chunk(b"IDAT", zlib.compress(rows)))
        f.write(chunk(b"IEND", b""))


with open(os.path.join("config", "classes.txt")) as f:
    classes = f.read().split()
print(f"epochs={epochs} lr={lr} augment={augment} optimizer={optimizer} classes={classes}")
write_png("sample.png", (epochs * 40 % 256, 100, 200 if augment else 0))
os.makedirs("samples", exist_ok=True)
write_png(os.path.join("samples", "x.png"), (int(lr * 1000) % 256,))
