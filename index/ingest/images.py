"""Safe image decoding for ingest and queries: orientation, odd modes, size caps, thumbnails."""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

# The encoder wants 224 px on the short side and thumbnails 256 px on the long side. JPEG decodes straight to
# 1/2, 1/4 or 1/8 scale, so a photo is decoded at the smallest scale covering both (640x480 decodes as 320x240).
ENCODER_SIDE = 224
THUMBNAIL_SIDE = 256
# Very long banners are cropped to this aspect before the encoder's resize, which would otherwise
# scale a 1x4000 strip to 224x896000.
MAX_ASPECT = 4.0
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA"})
_STRIP_ROWS = 256
# Pillow allocates large images in 16 MB blocks, which glibc serves from per-thread arenas and keeps once freed: ten
# request threads decoding 16-bit 8000x8000 images held 1.5 GB after two at a time had finished. Blocks over 32 MB
# are mmapped and handed back on free (measured: the same run peaked at 0.65 GB and ended at its baseline).
Image.core.set_block_size(64 * 1024**2)


class ImageDecodeError(ValueError):
    """A file could not be used as an image; the message says why."""


def _strips(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (top row, rows as an array) a few rows at a time, so no full-size array is ever made."""
    width, height = image.size
    for top in range(0, height, _STRIP_ROWS):
        yield top, np.asarray(image.crop((0, top, width, min(height, top + _STRIP_ROWS))))


def _high_depth_to_gray(image: Image.Image) -> Image.Image:
    """Return an 8-bit grayscale copy of a 16-bit, 32-bit integer or float image, scaled to its range.

    Integers scale from 0 to their peak, floats from their minimum to their maximum. Works in float32 strips: a
    16-bit 8000x8000 image costs its own 128 MB and the 64 MB result, not the gigabytes of float64 copies.
    """
    is_float = image.mode == "F"
    low, high = math.inf, -math.inf
    for _, strip in _strips(image):
        values = np.nan_to_num(strip) if is_float else strip
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if not is_float:
        low = 0.0
    scale = np.float32(255.0 / (high - low)) if high > low else np.float32(0.0)
    gray = np.empty((image.height, image.width), dtype=np.uint8)
    for top, strip in _strips(image):
        values = strip.astype(np.float32)
        if is_float:
            np.nan_to_num(values, copy=False)
        values -= np.float32(low)
        values *= scale
        np.clip(values, 0, 255, out=values)
        gray[top : top + len(values)] = values  # the cast truncates, as astype(uint8) did
    return Image.frombuffer("L", image.size, gray, "raw", "L", 0, 1)  # shares ``gray``: no 8-bit copy


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image


def decoded_bytes(image: Image.Image) -> int:
    """Return the bytes ``image`` takes once decoded: pixels x bands x bytes per sample (16-bit counts twice)."""
    try:
        mode = ImageMode.getmode(image.mode)
    except KeyError:
        return image.width * image.height * 4
    return image.width * image.height * len(mode.bands) * np.dtype(mode.typestr).itemsize


def _reduced(image: Image.Image, short_side: int, long_side: int) -> Image.Image:
    """Return ``image`` box-reduced by a whole factor to no less than the sizes asked for (large images only)."""
    target = _draft_size(image.width, image.height, short_side, long_side)
    if target is None:
        return image
    factor = min(image.width // target[0], image.height // target[1])
    return image.reduce(factor) if factor >= 2 else image


def _crop_extreme_aspect(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width >= height * MAX_ASPECT:
        new_width = max(1, int(height * MAX_ASPECT))
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    if height >= width * MAX_ASPECT:
        new_height = max(1, int(width * MAX_ASPECT))
        top = (height - new_height) // 2
        return image.crop((0, top, width, top + new_height))
    return image


def _draft_size(width: int, height: int, short_side: int, long_side: int) -> tuple[int, int] | None:
    scale = max(short_side / min(width, height), long_side / max(width, height))
    return (math.ceil(width * scale), math.ceil(height * scale)) if scale <= 0.5 else None


def open_image(
    source: Path | BinaryIO | bytes,
    max_pixels: int,
    short_side: int = ENCODER_SIDE,
    long_side: int = THUMBNAIL_SIDE,
    *,
    max_decoded_bytes: int | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image to RGB, EXIF-oriented and reduced to no less than the sizes asked for (JPEG by drafting).

    Return it and its full oriented size. Refuses images over ``max_pixels`` or, decoded, over ``max_decoded_bytes``.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(source)
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageDecodeError("image has no pixels")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
                    "(SENSORIUM_INGEST__MAX_IMAGE_PIXELS)"
                )
            size = decoded_bytes(image)
            if max_decoded_bytes is not None and size > max_decoded_bytes:
                raise ImageDecodeError(
                    f"image is {width}x{height} in mode {image.mode}: {size:,} bytes decoded, over the limit of "
                    f"{max_decoded_bytes:,} (SENSORIUM_INGEST__MAX_DECODED_BYTES)"
                )
            draft = _draft_size(width, height, short_side, long_side) if image.format == "JPEG" else None
            if draft is not None:
                image.draft("RGB", draft)
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _ROTATED_ORIENTATIONS:
                width, height = height, width
            image.load()
            image = ImageOps.exif_transpose(image) or image
            if image.mode in _HIGH_DEPTH_MODES:
                image = _high_depth_to_gray(image)
            if image.mode in _REDUCIBLE_MODES:  # before the RGB copy, which would be full size
                image = _reduced(image, short_side, long_side)
            rgb = _reduced(_to_rgb(image), short_side, long_side)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"decompression bomb refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"truncated or corrupt image: {exc}") from None
    except MemoryError:
        raise ImageDecodeError("image too large to decode in memory") from None
    return rgb, (width, height)


_decode_slots: dict[int, threading.BoundedSemaphore] = {}
_decode_slots_lock = threading.Lock()


@contextmanager
def decode_slot(limit: int) -> Iterator[None]:
    """Hold one of ``limit`` process-wide slots for decoding a request's image, which bounds their peak memory."""
    with _decode_slots_lock:
        slots = _decode_slots.setdefault(limit, threading.BoundedSemaphore(limit))
    with slots:
        yield


def encoder_ready(image: Image.Image) -> Image.Image:
    """Return the image cropped to a sane aspect ratio for the encoder's resize-and-crop."""
    return _crop_extreme_aspect(image)


def thumbnail_jpeg(image: Image.Image, size: int, quality: int) -> bytes:
    """Return a JPEG thumbnail whose longer side is at most ``size``."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()
