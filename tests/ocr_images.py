"""Pictures with rendered text for OCR tests and the OCR evaluation: several fonts, small and large text, plain
and busy backgrounds, slight rotations, grain and JPEG artefacts; plus settings-page screenshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.scene_videos import photo, texture

WORDS_FILE = Path(__file__).resolve().parent / "fixtures" / "ocr_words.txt"
# Debian's fonts-dejavu-core (.ci/run installs it when missing); Pillow's own scalable font is always there.
_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
)
PILLOW_FONT = "pillow-default"
FontLike = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass
class TextImage:
    """A generated picture and the lines of words rendered in it."""

    name: str
    image: Image.Image
    lines: list[str]
    font: str
    text_px: int
    busy: bool


def words() -> list[str]:
    """Return the evaluation vocabulary (the data file, without comments)."""
    return [w.strip() for w in WORDS_FILE.read_text().splitlines() if w.strip() and not w.startswith("#")]


def fonts() -> list[str]:
    """Return the fonts available here: DejaVu files that exist, then Pillow's bundled font."""
    return [f for f in _FONT_FILES if Path(f).is_file()] + [PILLOW_FONT]


def load_font(font: str, size: int) -> FontLike:
    """Return ``font`` (a file or PILLOW_FONT) at ``size`` pixels."""
    if font == PILLOW_FONT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(font, size)


def _background(rng: np.random.Generator, size: tuple[int, int], busy: bool) -> tuple[Image.Image, tuple[int, ...]]:
    """Return a background and an ink colour that reads on it."""
    if not busy:
        light = bool(rng.random() < 0.7)
        shade = rng.integers(215, 256, 3) if light else rng.integers(0, 50, 3)
        ink = tuple(int(v) for v in (rng.integers(0, 60, 3) if light else rng.integers(200, 256, 3)))
        return Image.new("RGB", size, tuple(int(v) for v in shade)), ink
    seed = int(rng.integers(0, 1_000_000))
    pixels = photo(seed, size) if rng.random() < 0.5 else texture(seed, size, rng.integers(0, 256, (4, 3)))
    # Busy, but a viewer can still read it: contrast squeezed towards dark or light, ink of the other end.
    dark = bool(rng.random() < 0.5)
    squeezed = pixels.astype(np.float32) * 0.45 + (0 if dark else 140)
    ink = (245, 245, 245) if dark else (10, 10, 10)
    return Image.fromarray(squeezed.clip(0, 255).astype(np.uint8)), ink


def render(
    lines: list[str],
    font: str,
    text_px: int,
    rng: np.random.Generator,
    busy: bool = False,
    size: tuple[int, int] = (640, 400),
    name: str = "image.jpg",
) -> TextImage:
    """Render ``lines`` left-aligned at ``text_px`` pixels, slightly rotated, with grain."""
    image, ink = _background(rng, size, busy)
    draw = ImageDraw.Draw(image)
    face = load_font(font, text_px)
    y = int(rng.integers(10, 30))
    for line in lines:
        x = int(rng.integers(10, 40))
        draw.text((x, y), line, font=face, fill=ink)
        y += int(text_px * rng.uniform(1.6, 2.4))
    angle = float(rng.uniform(-3.0, 3.0))
    fill = image.getpixel((0, 0))
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 7), (size[1], size[0], 3))
    image = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
    return TextImage(name, image, lines, font, text_px, busy)


def eval_images(count: int = 300, seed: int = 0) -> list[TextImage]:
    """Return ``count`` pictures: fonts in turn, 40 % small text (14-18 px), 40 % busy backgrounds."""
    rng = np.random.default_rng(seed)
    vocabulary = words()
    faces = fonts()
    images = []
    for i in range(count):
        small = i % 5 in (0, 1)
        busy = i % 5 in (1, 2)
        text_px = int(rng.integers(14, 19)) if small else int(rng.integers(20, 41))
        per_line = (2, 5) if text_px < 30 else (2, 4)
        n_lines = int(rng.integers(2, 6 if text_px < 30 else 4))
        lines = [
            " ".join(str(w) for w in rng.choice(vocabulary, int(rng.integers(*per_line)), replace=False))
            for _ in range(n_lines)
        ]
        images.append(render(lines, faces[i % len(faces)], text_px, rng, busy, name=f"text-{i:03d}.jpg"))
    return images


def settings_screenshots(seed: int = 1) -> list[TextImage]:
    """Return a settings page with "Enable two-factor authentication" first, then 20 pages sharing most words."""
    rng = np.random.default_rng(seed)
    lookalikes = [
        "Disable two-factor authentication",
        "Enable two-step verification",
        "Two-factor authentication is enabled",
        "Enable authentication for two devices",
        "Enable factor based authentication",
        "Require two-factor authentication for admins",
        "Enable single sign-on authentication",
        "Two-factor authentication recovery codes",
        "Enable passkey authentication",
        "Authentication factor: two devices enabled",
        "Enable two notifications",
        "Reset two-factor authentication",
        "Enable multi-factor sign-in",
        "Enable two-factor backup codes",
        "Turn on authentication for enabled apps",
        "Two-factor authentication settings",
        "Enable security key authentication",
        "Enable login alerts for two-factor devices",
        "Enforce authentication factor rules",
        "Remind me later about two-factor authentication",
    ]
    common = ["Account settings", "Change password", "Email notifications", "Privacy and security", "Language"]
    pages = []
    face = fonts()[0]
    for i, headline in enumerate(["Enable two-factor authentication", *lookalikes]):
        body = list(common)
        body.insert(int(rng.integers(1, len(body))), headline)
        pages.append(render(body, face, 16, rng, size=(560, 320), name=f"settings-{i:02d}.png"))
    return pages


def save(images: list[TextImage], folder: Path) -> list[Path]:
    """Write the pictures into ``folder`` (JPEG quality 85 or PNG by name) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in images:
        path = folder / item.name
        item.image.save(path, quality=85) if path.suffix == ".jpg" else item.image.save(path)
        paths.append(path)
    return paths
