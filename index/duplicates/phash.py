"""Perceptual hashes of an image in numpy: pHash (DCT) and dHash (gradient), 64 bits each.

Bit for bit the same as ``imagehash.phash`` and ``imagehash.dhash`` (checked in tests), without SciPy: the
DCT of a 32x32 image is two small matrix products, and only its 8x8 low-frequency corner is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

_HASH_SIDE = 8
_PHASH_SIDE = 32


@dataclass(frozen=True)
class ImageHashes:
    """The two 64-bit hashes of one image, as signed int64 (the database's BIGINT)."""

    phash: int
    dhash: int

    @property
    def pair(self) -> tuple[int, int]:
        """Return (pHash, dHash)."""
        return self.phash, self.dhash


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """Return the first 8 rows of the (unnormalised) 32-point DCT-II matrix, as SciPy's ``dct`` computes it."""
    k = np.arange(_HASH_SIDE)[:, None]
    n = np.arange(_PHASH_SIDE)[None, :]
    rows: np.ndarray = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * _PHASH_SIDE))
    return rows


def _pack(bits: np.ndarray) -> int:
    """Return 64 booleans (row-major, first bit highest, as imagehash prints them) as a signed int64."""
    packed = np.packbits(bits.ravel().astype(np.uint8))
    return int(packed.view(">i8")[0])


def _gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def phash(image: Image.Image) -> int:
    """Return the 64-bit DCT hash of an image: which low frequencies lie above their median."""
    pixels = _gray(image, (_PHASH_SIDE, _PHASH_SIDE))
    rows = _dct_rows()
    low = rows @ pixels @ rows.T
    return _pack(low > np.median(low))


def dhash(image: Image.Image) -> int:
    """Return the 64-bit gradient hash of an image: whether each pixel of a 9x8 image is brighter than its left."""
    pixels = _gray(image, (_HASH_SIDE + 1, _HASH_SIDE))
    return _pack(pixels[:, 1:] > pixels[:, :-1])


def image_hashes(image: Image.Image) -> ImageHashes:
    """Return both hashes of an image (large images are first reduced, which costs no hash bits)."""
    small = _reduced(image)
    return ImageHashes(phash=phash(small), dhash=dhash(small))


def _reduced(image: Image.Image) -> Image.Image:
    """Return the image box-reduced to no less than 128 px on its short side; LANCZOS to 32 px is then cheap."""
    factor = min(image.size) // 128
    return image.reduce(factor) if factor >= 2 else image


def hamming(a: int, b: int) -> int:
    """Return the number of differing bits of two 64-bit hashes."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()
