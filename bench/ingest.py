"""Benchmark bulk ingest against the raw encoder on the same images; prints one JSON object.

Efficiency = end-to-end images/s (walk, hash, decode, thumbnail, preprocess, encode, commit, index update and
snapshot) over the raw encoder's images/s on the same images already decoded and preprocessed, both measured in
this process. The library is split into rounds; each round times the raw encoder on its images, then ingests
them, so load from other processes on a shared machine hits both sides alike (see efficiency_by_round). With
another runtime than torch fp32 (--runtime, --quantize), each round also times torch fp32's raw encoder on the
same images: end_to_end_over_torch_fp32_raw says whether the whole pipeline now beats the old model call alone.

Run: PYTHONPATH=. python bench/ingest.py [--images 1000] [--workers 2] [--model ViT-B-32 --pretrained none]
          [--runtime auto|torch|onnx] [--quantize none|int8]
     PYTHONPATH=. python bench/ingest.py --distributed ...   (ingest across workers: bench/ingest_distributed.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from core.db.engine import read_session
from core.settings import EncoderSettings, IngestSettings, Settings
from index.encoders import Encoder, get_encoder
from index.ingest.discover import discover
from index.ingest.images import encoder_ready, open_image, thumbnail_jpeg
from index.ingest.pipeline import ingest
from index.service import get_live_index
from tests.media_images import distinct_image

SIZE = (640, 480)


def make_library(folder: Path, count: int, first_seed: int = 0) -> list[Path]:
    """Write ``count`` distinct 640x480 JPEGs (quality 90) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo-{i:05d}.jpg" for i in range(first_seed, first_seed + count)]
    for seed, path in enumerate(paths, first_seed):
        distinct_image(seed, SIZE).save(path, quality=90)
    return paths


def _prepare(path: Path, encoder: Encoder, settings: Settings) -> Any:
    image, _ = open_image(path, settings.ingest.max_image_pixels, max_decoded_bytes=settings.ingest.max_decoded_bytes)
    thumbnail_jpeg(image, settings.thumbnails.size, settings.thumbnails.quality)
    return encoder.preprocess(encoder_ready(image))


def prepare_cost_ms(paths: list[Path], encoder: Encoder, settings: Settings) -> float:
    """Return the mean ms per image of decode + thumbnail + preprocess in one worker thread."""
    with ThreadPoolExecutor(1) as pool:  # a worker thread, as in the pipeline (torch runs one thread there)
        started = time.perf_counter()
        list(pool.map(lambda p: _prepare(p, encoder, settings), paths))
        return (time.perf_counter() - started) / len(paths) * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and return the report."""
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-ingest-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            encoder=EncoderSettings(
                model=args.model,
                pretrained=args.pretrained,
                batch_size=args.batch_size,
                runtime=args.runtime,
                quantize=args.quantize,
            ),
            ingest=IngestSettings(workers=args.workers),
        )
        per_round = args.images // args.rounds
        chunks = [make_library(root / "library" / f"part-{n}", per_round, n * per_round) for n in range(args.rounds)]
        encoder = get_encoder(settings.encoder)
        torch_fp32 = get_encoder(settings.encoder.model_copy(update={"runtime": "torch", "quantize": "none"}))
        baseline = torch_fp32 if torch_fp32 is not encoder else None
        with ThreadPoolExecutor(2) as pool:  # pre-decoding is not timed
            tensors = [list(pool.map(lambda p: _prepare(p, encoder, settings), chunk)) for chunk in chunks]
        encoder.encode_preprocessed(tensors[0][: args.batch_size])  # warm-up: first-call allocations
        if baseline is not None:
            baseline.encode_preprocessed(tensors[0][: args.batch_size])
        load_before = os.getloadavg()
        raw_s, e2e_s, raw_cpu, e2e_cpu, torch_s = [], [], [], [], []
        # Rounds alternate raw and end-to-end on the same images, so load from other processes hits both alike.
        for chunk, pixels in zip(chunks, tensors, strict=True):
            wall, cpu = _timed(partial(encoder.encode_preprocessed, pixels))
            raw_s.append(wall)
            raw_cpu.append(cpu)
            if baseline is not None:
                torch_s.append(_timed(partial(baseline.encode_preprocessed, pixels))[0])
            wall, cpu = _timed(partial(_ingest_and_index, chunk[0].parent, settings))
            e2e_s.append(wall)
            e2e_cpu.append(cpu)
        load_after = os.getloadavg()
        prepare_ms = prepare_cost_ms(chunks[0][:200], encoder, settings)
        indexed = len(get_live_index(settings))
    images = sum(len(chunk) for chunk in chunks)
    assert indexed == images, (indexed, images)
    raw, e2e = images / sum(raw_s), images / sum(e2e_s)
    encode_ms = 1000 / raw
    against_torch = {}
    if torch_s:
        against_torch = {
            "torch_fp32_raw_images_per_s": round(images / sum(torch_s), 2),
            "end_to_end_over_torch_fp32_raw": round(e2e / (images / sum(torch_s)), 3),
            "end_to_end_over_torch_fp32_raw_by_round": [round(t / e, 3) for t, e in zip(torch_s, e2e_s, strict=True)],
        }
    return {
        "benchmark": "ingest",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": load_after,
        },
        "model": f"{args.model} ({args.pretrained})",
        "runtime": type(encoder).__name__,
        "model_id": encoder.model_id,
        "images": images,
        "image_size": f"{SIZE[0]}x{SIZE[1]} JPEG",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "raw_encoder_images_per_s": round(raw, 2),
        "end_to_end_images_per_s": round(e2e, 2),
        "efficiency": round(e2e / raw, 3),
        "efficiency_by_round": [round(r / e, 3) for r, e in zip(raw_s, e2e_s, strict=True)],
        **against_torch,
        # CPU seconds of this process (all threads): what the work costs, whatever else the machine runs.
        "cpu_ms_per_image": {
            "raw": round(sum(raw_cpu) / images * 1000, 1),
            "end_to_end": round(sum(e2e_cpu) / images * 1000, 1),
        },
        "cpu_efficiency": round(sum(raw_cpu) / sum(e2e_cpu), 3),
        "prepare_ms_per_image": round(prepare_ms, 2),
        "encode_ms_per_image": round(encode_ms, 2),
        "serial_bound": round(encode_ms / (encode_ms + prepare_ms), 3),
        "target": ">= 0.9 (and end_to_end_over_torch_fp32_raw > 1)",
    }


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    """Return the wall and process CPU seconds (all threads) that ``call`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def _ingest_and_index(folder: Path, settings: Settings) -> None:
    """What `sensorium ingest FOLDER` does after loading the model: ingest, catch the index up, save a snapshot."""
    summary = ingest(discover([folder], None), settings)
    assert summary.failed == 0 and summary.indexed > 0, summary.failures[:3]
    index = get_live_index(settings)
    with read_session(settings) as session:
        index.catch_up(session)
    index.save()


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5, help="alternating raw / end-to-end rounds over the images")
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="none", help="random weights: the same cost as the pretrained ones")
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    p.add_argument("--quantize", default="none", choices=["none", "int8"])
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with --distributed, the distributed one) and print the report as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--distributed" in args:
        from bench.ingest_distributed import main as distributed_main

        distributed_main([a for a in args if a != "--distributed"])
        return
    print(json.dumps(run(parser().parse_args(args)), indent=2))


if __name__ == "__main__":
    main()
