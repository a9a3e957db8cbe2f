"""``sensorium demo``: draw a small library, ingest it, and show text, image and example searches."""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.panel import Panel

from api.render import print_results
from core.settings import Settings, get_settings
from index.encoders import EncoderWeightsUnavailable, get_encoder
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.offline import uses_random_weights
from index.search import SearchRequest, SearchResult, search

COLORS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 70, 220), "yellow": (240, 210, 30),
          "purple": (130, 40, 170), "orange": (245, 130, 20)}  # fmt: skip
SHAPES = ("circle", "square", "triangle", "stripes")


def _draw(shape: str, color: tuple[int, int, int], size: int = 320) -> Image.Image:
    image = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    margin = size // 6
    box = (margin, margin, size - margin, size - margin)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(size // 2, margin), (size - margin, size - margin), (margin, size - margin)], fill=color)
    else:
        for x in range(0, size, size // 8):
            draw.rectangle((x, 0, x + size // 16, size), fill=color)
    return image


def make_sample_library(folder: Path) -> list[Path]:
    """Draw one PNG per colour and shape into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for color_name, rgb in COLORS.items():
        for shape in SHAPES:
            path = folder / f"{color_name}-{shape}.png"
            _draw(shape, rgb).save(path)
            paths.append(path)
    return paths


def _demo_settings(base: Settings, folder: Path, console: Console) -> Settings:
    settings = base.model_copy(update={"data_dir": folder / "data", "database_url": None})
    try:
        get_encoder(settings.encoder)
        console.print(f"Encoder: {settings.encoder.model} ({settings.encoder.pretrained})")
        return settings
    except EncoderWeightsUnavailable as exc:
        first_line = str(exc).splitlines()[0]
        console.print(
            Panel(
                f"[bold]OFFLINE[/bold]: pretrained weights for {settings.encoder.model} "
                f"({settings.encoder.pretrained}) are not available here.\n{first_line}\n\n"
                "The demo continues with seeded random weights so the whole path shows: ingest, index, search. "
                "Scores are not meaningful; query-by-image still finds the exact image.\n"
                "Provide weights with SENSORIUM_ENCODER__PRETRAINED=/path/to/open_clip_model.safetensors (see README).",
                title="Sensorium demo",
                border_style="yellow",
            )
        )
        random_encoder = settings.encoder.model_copy(update={"pretrained": "none"})
        return settings.model_copy(update={"encoder": random_encoder})


def run_demo(folder: Path | None = None) -> None:
    """Run the demo in a fresh folder (default ``<data dir>/demo``)."""
    console = Console()
    base = get_settings()
    folder = (folder or base.resolved_data_dir() / "demo").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    settings = _demo_settings(base, folder, console)
    paths = make_sample_library(folder / "library")
    console.print(f"Drew {len(paths)} sample images in {folder / 'library'}")

    started = time.perf_counter()
    summary = ingest(discover([folder / "library"], None), settings)
    console.print(
        f"Ingested: {summary.indexed} indexed, {summary.skipped} skipped, {summary.failed} failed "
        f"in {time.perf_counter() - started:.1f} s"
    )
    again = ingest(discover([folder / "library"], None), settings)
    console.print(
        f"Re-ingest of the same folder: {again.indexed} indexed, {again.skipped} skipped (deduplicated by sha256)"
    )

    for text in ("a red circle", "blue stripes"):
        _show(search(SearchRequest(text=text, limit=5), settings), f"text: {text!r}")
    probe = folder / "library" / "green-square.png"
    by_image = search(SearchRequest(image=probe.read_bytes(), limit=5), settings)
    _show(by_image, f"image: {probe.name}")
    if by_image:
        first = by_image[0]
        _show(search(SearchRequest(asset_id=first.asset_id, limit=5), settings), f"more like: {first.name}")
    console.print(f"Data for this demo lives in {folder}; try:\n  {try_command(settings)}", soft_wrap=True)


def _show(results: list[SearchResult], title: str) -> None:
    print_results([r.to_dict() for r in results], title=title)


def try_command(settings: Settings) -> str:
    """Return a search command that works as printed on the demo's own data dir and encoder."""
    env = f"SENSORIUM_DATA_DIR={shlex.quote(str(settings.data_dir))}"
    if uses_random_weights(settings.encoder):
        env += " SENSORIUM_ENCODER__PRETRAINED=none"
    return f"{env} sensorium search 'a yellow triangle'"
