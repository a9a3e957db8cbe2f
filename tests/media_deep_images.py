"""High-bit-depth test images: 16-bit grayscale and 16-bit RGB PNGs, and 16-bit TIFFs, written in memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def gray16_png(width: int, height: int) -> bytes:
    """Return a 16-bit grayscale PNG with a smooth gradient (small on disk, large decoded)."""
    columns = np.arange(width, dtype=np.uint32)[None, :] * 7
    rows = np.arange(height, dtype=np.uint32)[:, None] * 3
    buffer = io.BytesIO()
    Image.fromarray(((columns + rows) % 65536).astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def rgb16_png(width: int, height: int, seed: int = 0) -> bytes:
    """Return a 48-bit (16 bits per channel) RGB PNG; Pillow cannot write these, so the chunks are built here."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    pixels = np.kron(base, np.ones((height // 8 + 1, width // 8 + 1, 1), dtype=np.uint16))[:height, :width]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def gray16_tiff(width: int, height: int, seed: int = 0) -> bytes:
    """Return a 16-bit grayscale TIFF (``seed`` shifts its values, for distinct content of the same shape)."""
    values = (np.arange(width * height, dtype=np.uint32).reshape(height, width) * 13 + seed * 4099) % 65536
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, format="TIFF")
    return buffer.getvalue()
