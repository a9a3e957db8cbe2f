"""Safe image decoding for ingest and queries: orientation, odd modes, size caps, thumbnails."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# The encoder wants 224 px on the short side and thumbnails 256 px on the long side. JPEG decodes straight to
# 1/2, 1/4 or 1/8 scale, so a photo is decoded at the smallest scale covering both (640x480 decodes as 320x240).
ENCODER_SIDE = 224
THUMBNAIL_SIDE = 256
# Very long banners are cropped to this aspect before the encoder's resize, which would otherwise
# scale a 1x4000 strip to 224x896000.
MAX_ASPECT = 4.0
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}


class ImageDecodeError(ValueError):
    """A file could not be used as an image; the message says why."""


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 0.0
        scaled = (array * (255.0 / peak)) if peak > 0 else array
        return Image.fromarray(scaled.clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image


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
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image to RGB (EXIF-oriented; JPEG drafted down to no less than the sizes asked for).

    Return it and its full oriented size.
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
            draft = _draft_size(width, height, short_side, long_side) if image.format == "JPEG" else None
            if draft is not None:
                image.draft("RGB", draft)
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _ROTATED_ORIENTATIONS:
                width, height = height, width
            image.load()
            image = ImageOps.exif_transpose(image) or image
            rgb = _to_rgb(image)
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
