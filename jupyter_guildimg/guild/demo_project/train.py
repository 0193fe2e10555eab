"""A stand-in for a training script: no ML, just what one writes to its run
directory. Each epoch redraws ``samples.png`` (so the monitor captures a new
revision) and logs a ``loss`` scalar; at the end it writes a confusion matrix
(PNG) and an attention map (JPEG) under ``plots/``."""

from __future__ import annotations

import argparse
import math
import os
import random
import time

from PIL import Image, ImageDraw

from jupyter_guildimg.tfevent import EventFileWriter


def sample_grid(epoch: int, epochs: int, rng: random.Random, size: int = 128) -> Image.Image:
    """Blobs that sharpen as training goes on, and a progress bar (``epoch + 1`` of
    ``epochs``) under them: every epoch's grid differs from the last, however long
    the run (up to ``size`` epochs)."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    cell = (size - 8) // 4
    sharpness = 1 - 0.8 * 0.8**epoch
    for row in range(4):
        for col in range(4):
            noise = int(255 * (1 - sharpness) * rng.random())
            colour = (40 + 50 * row, 200 - noise // 2, 40 + 50 * col)
            box = (col * cell + 4, row * cell + 4, (col + 1) * cell - 4, (row + 1) * cell - 4)
            draw.ellipse(box, fill=colour)
    done = max(1, size * (epoch + 1) // max(epochs, 1))
    draw.rectangle((0, size - 6, done - 1, size - 1), fill=(60, 90, 200))
    return image


def confusion(rng: random.Random, classes: int = 5, size: int = 160) -> Image.Image:
    image = Image.new("L", (size, size))
    draw = ImageDraw.Draw(image)
    cell = size // classes
    for i in range(classes):
        for j in range(classes):
            value = 220 if i == j else int(60 * rng.random())
            draw.rectangle((j * cell, i * cell, (j + 1) * cell - 1, (i + 1) * cell - 1), fill=value)
    return image


def attention(size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size))
    for y in range(size):
        for x in range(size):
            d = math.hypot(x - size / 2, y - size / 2) / (size / 2)
            v = max(0, int(255 * (1 - d)))
            image.putpixel((x, y), (v, v // 3, 255 - v))
    return image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    loss = 2.0
    with EventFileWriter(".") as writer:
        for epoch in range(args.epochs):
            loss *= 1 - args.lr * (0.5 + rng.random())
            writer.add_scalar("loss", loss, epoch)
            sample_grid(epoch, args.epochs, rng).save("samples.png")
            print(f"epoch {epoch}: loss {loss:.4f}")
            time.sleep(args.delay)
    os.makedirs("plots", exist_ok=True)
    confusion(rng).save("plots/confusion.png")
    attention().save("plots/attention.jpg", quality=90)


if __name__ == "__main__":
    main()
