"""Benchmark the encoder runtimes side by side: torch fp32, ONNX Runtime fp32 and int8; prints one JSON object.

Image tower: images/s at batch 32 on the same preprocessed pixels, variants alternating round by round, so load
from elsewhere hits all alike; each ratio is against torch fp32 in the same run. Drift: cosine of each runtime's
vectors to torch fp32's on 200 varied images (random weights still measure numerical drift). Text tower: p50 of
one query at a time, alternating runtimes, and what one call with 8 texts gains over 8 single calls.

Run: PYTHONPATH=. python bench/encoder.py [--model ViT-B-32 --pretrained none] [--rounds 5] [--images 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from core.settings import EncoderSettings
from index.encoders import Encoder, get_encoder
from tests.media_images import distinct_image

VARIANTS = {"torch_fp32": {"runtime": "torch"}, "onnx_fp32": {"runtime": "onnx"}, "onnx_int8": {"quantize": "int8"}}
_WORDS = ["red", "car", "beach", "dog", "sunset", "city", "night", "forest", "portrait", "snow", "river", "cat"]


def varied_images(count: int) -> list[Image.Image]:
    """Return ``count`` different pictures: blocks and noise, gradients, shapes and lines, at several sizes."""
    rng = np.random.default_rng(11)
    images = []
    for i in range(count):
        size = (int(rng.integers(160, 900)), int(rng.integers(120, 700)))
        if i % 3 == 0:
            images.append(distinct_image(i, size))
            continue
        x = np.linspace(0, 1, size[0])[None, :, None]
        y = np.linspace(0, 1, size[1])[:, None, None]
        colours = rng.random((2, 3))
        pixels = (x * colours[0] + y * colours[1]) / 2 * 255
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 12))):
            box = sorted(rng.integers(0, size[0], 2).tolist()), sorted(rng.integers(0, size[1], 2).tolist())
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.ellipse if i % 3 == 1 else draw.rectangle
            shape((box[0][0], box[1][0], box[0][1], box[1][1]), fill=fill)
        images.append(image)
    return images


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _one_by_one(encoder: Encoder, texts: list[str]) -> None:
    for text in texts:
        encoder.encode_texts([text])


def _cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(axis=1)  # both are L2-normalised
    return {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}


def _queries(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_WORDS, size=3).tolist()) + f" {seed}-{i}" for i in range(count)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the three encoders, measure them alternately and return the report."""
    export_dir = Path(args.export_dir or tempfile.mkdtemp(prefix="sensorium-bench-encoder-"))
    base = EncoderSettings(model=args.model, pretrained=args.pretrained, batch_size=32, export_dir=export_dir)
    build_s: dict[str, float] = {}
    encoders: dict[str, Encoder] = {}
    for name, update in VARIANTS.items():
        started = time.perf_counter()
        encoders[name] = get_encoder(base.model_copy(update=update))
        build_s[name] = round(time.perf_counter() - started, 1)
    reference = encoders["torch_fp32"]
    pixels = [reference.preprocess(image) for image in varied_images(args.images)]
    vectors = {name: encoder.encode_preprocessed(pixels) for name, encoder in encoders.items()}
    batch = pixels[:32]
    for encoder in encoders.values():
        encoder.encode_preprocessed(batch)  # warm-up

    load_before = os.getloadavg()
    image_s: dict[str, list[float]] = {name: [] for name in encoders}
    text_s: dict[str, list[float]] = {name: [] for name in encoders}
    singles_s: dict[str, list[float]] = {name: [] for name in encoders}
    batch8_s: dict[str, list[float]] = {name: [] for name in encoders}
    for round_ in range(args.rounds):
        for name, encoder in encoders.items():
            image_s[name].append(_timed(partial(encoder.encode_preprocessed, batch)))
        texts = _queries(args.queries + 8, round_)
        for name, encoder in encoders.items():
            for text in texts[: args.queries]:
                text_s[name].append(_timed(partial(encoder.encode_texts, [text])))
            eight = texts[args.queries :]
            singles_s[name].append(_timed(partial(_one_by_one, encoder, eight)))
            batch8_s[name].append(_timed(partial(encoder.encode_texts, eight)))
    load_after = os.getloadavg()

    images_per_s = {name: 32 / statistics.median(times) for name, times in image_s.items()}
    text_p50 = {name: statistics.median(times) for name, times in text_s.items()}
    return {
        "benchmark": "encoder",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": load_after,
        },
        "model": f"{args.model} ({args.pretrained})",
        "rounds": args.rounds,
        "build_s": build_s,
        "image_batch_32": {
            "images_per_s": {name: round(v, 2) for name, v in images_per_s.items()},
            "vs_torch_fp32": {name: round(v / images_per_s["torch_fp32"], 3) for name, v in images_per_s.items()},
            "by_round_vs_torch_fp32": {
                name: [round(t / o, 3) for t, o in zip(image_s["torch_fp32"], times, strict=True)]
                for name, times in image_s.items()
            },
            "target": "onnx_fp32 >= 1.2, onnx_int8 >= 1.6",
        },
        "cosine_to_torch_fp32": {
            "images": args.images,
            **{name: _cosines(vectors[name], vectors["torch_fp32"]) for name in ("onnx_fp32", "onnx_int8")},
            "target": "onnx_fp32 >= 0.999, onnx_int8 >= 0.98 (min)",
        },
        "text_one_query": {
            "p50_ms": {name: round(v * 1000, 2) for name, v in text_p50.items()},
            "vs_torch_fp32": {name: round(v / text_p50["torch_fp32"], 3) for name, v in text_p50.items()},
            "target": "onnx <= 0.7",
        },
        "text_batch_of_8_gain": {
            name: round(statistics.median(singles_s[name]) / statistics.median(batch8_s[name]), 2) for name in encoders
        },
    }


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="none", help="random weights: the same cost as the pretrained ones")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (one batch of 32 per variant each)")
    p.add_argument("--images", type=int, default=200, help="varied images for the cosine comparison")
    p.add_argument("--queries", type=int, default=10, help="single text queries per variant per round")
    p.add_argument("--export-dir", default=None, help="reuse ONNX exports here (default: a new temp dir)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report as JSON."""
    print(json.dumps(run(parser().parse_args(argv)), indent=2))


if __name__ == "__main__":
    main()
