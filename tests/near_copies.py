"""Generated photo-like images and the edited copies a real library holds (for near-duplicate tests and bench)."""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

WIDTH, HEIGHT = 512, 384


def photo_like(seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """Return a distinct photo-like RGB image: 1/f colour texture, a sky-to-ground gradient and soft shapes."""
    rng = np.random.default_rng(seed)
    width, height = size
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    amplitude = radius ** -rng.uniform(1.6, 2.2)
    mix = rng.normal(size=(3, 3)) * 0.4 + np.eye(3)  # correlated channels, as in photographs
    fields = []
    for _ in range(3):
        phase = rng.uniform(0, 2 * np.pi, size=amplitude.shape)
        field = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(height, width))
        fields.append((field - field.mean()) / (field.std() + 1e-9))
    texture = np.einsum("ij,jhw->hwi", mix, np.stack(fields))
    horizon = rng.uniform(0.3, 0.7) * height
    rows = np.arange(height)[:, None, None]
    sky, ground = rng.uniform(40, 220, size=3), rng.uniform(20, 180, size=3)
    base = np.where(rows < horizon, sky, ground) + (rows - horizon) * rng.uniform(-0.2, 0.2)
    pixels = np.clip(base + texture * rng.uniform(15, 45), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(int(rng.integers(2, 7))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(20, width / 3), rng.uniform(20, height / 3)
        colour = (*(int(c) for c in rng.integers(0, 256, size=3)), int(rng.integers(120, 230)))
        box = (x - rx, y - ry, x + rx, y + ry)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    return image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """Return the image encoded as JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def resized_half(image: Image.Image) -> bytes:
    """The web export: half the width and height."""
    return jpeg_bytes(image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS))


def recompressed(image: Image.Image) -> bytes:
    """The chat-app copy: JPEG quality 40."""
    return jpeg_bytes(image, quality=40)


def cropped(image: Image.Image) -> bytes:
    """The banner crop: 8 % of the width and of the height cut off, 5 % on one side and 3 % on the other."""
    w, h = image.size
    return jpeg_bytes(image.crop((round(0.05 * w), round(0.03 * h), round(0.97 * w), round(0.95 * h))))


def brighter(image: Image.Image) -> bytes:
    """The colour-corrected edit: brightness +15 %."""
    return jpeg_bytes(ImageEnhance.Brightness(image).enhance(1.15))


def watermarked(image: Image.Image) -> bytes:
    """The shared copy: a small semi-transparent text mark in the bottom-right corner."""
    marked = image.copy()
    draw = ImageDraw.Draw(marked, "RGBA")
    font = ImageFont.load_default(size=max(10, image.height // 24))
    text = "(c) sensorium 2026"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = image.width - (right - left) - 8, image.height - (bottom - top) - 10
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 190))
    return jpeg_bytes(marked)


def rotated(image: Image.Image) -> bytes:
    """The straightened scan: rotated by 2 degrees, corners filled black."""
    return jpeg_bytes(image.rotate(2, resample=Image.Resampling.BICUBIC))


TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "resized_50": resized_half,
    "jpeg_q40": recompressed,
    "cropped_8": cropped,
    "brightness_15": brighter,
    "watermark": watermarked,
    "rotated_2": rotated,
}


def photo_video(path: Path, seeds: list[int], size: tuple[int, int], scene_s: float = 2.0, fps: int = 10) -> Path:
    """Write an h264 video whose scenes are the photo-like images of ``seeds``, resized to ``size``."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index, seed in enumerate(seeds):
            frame = av.VideoFrame.from_image(photo_like(seed).resize(size, Image.Resampling.LANCZOS))
            for n in range(round(scene_s * fps)):
                frame.pts = index * round(scene_s * fps) + n
                frame.time_base = Fraction(1, fps)
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
