"""Test images drawn on the fly: distinct noise-and-shape pictures, and awkward formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def distinct_image(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Return an RGB image that no other seed reproduces: coloured blocks over noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    base = np.kron(blocks, np.ones((height // 4 + 1, width // 4 + 1, 1), dtype=np.uint8))[:height, :width]
    noise = rng.integers(-40, 40, size=base.shape)
    image = Image.fromarray(np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    x, y = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
    draw.ellipse((x, y, x + 30, y + 30), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def write_images(folder: Path, count: int, start_seed: int = 0, suffix: str = ".png") -> list[Path]:
    """Write ``count`` distinct images into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(start_seed, start_seed + count):
        path = folder / f"img-{seed:05d}{suffix}"
        distinct_image(seed).save(path)
        paths.append(path)
    return paths
