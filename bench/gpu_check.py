"""GPU check: on CUDA, run the tiny-random pipeline, a ViT-B-32 encode in fp16 and ingest with decode; print timings.

Without CUDA it says so, runs the same code path briefly on CPU (tiny pipeline, tiny encoder) and exits 0.
Needs torch, diffusers, transformers, open_clip_torch, pydantic and pydantic-settings; no database, broker or FAISS
(so it runs on a bare GPU machine with the project on PYTHONPATH). Weights are random: no downloads.

Ingest (ViT-B-32 fp16 on CUDA): --ingest-images JPEGs (640x480) are decoded, thumbnailed and preprocessed by
--workers threads (the ingest pipeline's prepare step) while the calling thread encodes them in batches of
--batch-size, as the pipeline does; images/s end to end, decode included, next to decode alone and encode alone
(goal on one H100/H200-class GPU: >= 2,500 images/s end to end).

Run: PYTHONPATH=. python bench/gpu_check.py [--json] [--ingest-images 4096] [--workers 16] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> dict[str, float]:
    """Run ``fn`` once to warm up, then ``repeat`` times; return the first-call and median/min seconds in ms."""
    started = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - started
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - started)
    return {
        "first_ms": round(first * 1000, 1),
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
    }


def check_pipeline(data_dir: Path, device: str, sync: Callable[[], None], repeat: int) -> dict[str, Any]:
    """Time the tiny-random text-to-image pipeline through the registry path, at two sizes."""
    from generators.params import ResolvedParams, parse_request, validate_for
    from generators.pipelines import load_pipeline, run_generation
    from generators.registry import get_generator

    spec = get_generator("tiny-random")
    report: dict[str, Any] = {}
    sizes = ((64, 2), (256, 20)) if device.startswith("cuda") else ((64, 2),)
    for side, steps in sizes:
        request = parse_request(
            {"generator": spec.name, "prompt": "a red cube", "width": side, "height": side, "steps": steps, "seed": 1}
        )
        params = validate_for(request, spec)

        def generate(params: ResolvedParams = params) -> None:
            run_generation(spec, params, data_dir, device=device)

        report[f"{side}x{side}_{steps}_steps"] = timed(generate, repeat, sync)
    pipe = load_pipeline(spec, data_dir, device=device)
    report["unet_dtype"] = str(pipe.unet.dtype)
    report["device"] = str(pipe.device)
    return report


def check_encoder(device: str, sync: Callable[[], None], repeat: int) -> dict[str, Any]:
    """Time image and text encoding: ViT-B-32 (random weights) on CUDA in fp16, the tiny encoder on CPU."""
    from PIL import Image

    from core.settings import EncoderSettings
    from index.encoders import get_encoder

    model = "ViT-B-32" if device.startswith("cuda") else "tiny-clip"
    encoder = get_encoder(EncoderSettings(model=model, pretrained="none", device=device, batch_size=32))
    images = [Image.new("RGB", (320, 240), (i * 7 % 256, 80, 160)) for i in range(32)]
    texts = [f"a photo of object number {i}" for i in range(32)]
    vectors = encoder.encode_images(images[:2])
    model_obj = getattr(encoder, "_model", None)
    dtype = str(next(model_obj.parameters()).dtype) if model_obj is not None else "unknown"
    return {
        "model": f"{model} (random weights)",
        "param_dtype": dtype,
        "dim": int(vectors.shape[1]),
        "images_batch_32": timed(lambda: encoder.encode_images(images), repeat, sync),
        "texts_batch_32": timed(lambda: encoder.encode_texts(texts), repeat, sync),
        "one_text_query": timed(lambda: encoder.encode_texts(texts[:1]), repeat, sync),
    }


def _jpegs(folder: Path, count: int, distinct: int = 256) -> list[Path]:
    """Write ``count`` 640x480 JPEGs (quality 90) cycling through ``distinct`` pictures; return their paths."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.media_images import distinct_image

    with ThreadPoolExecutor() as pool:
        blobs = list(pool.map(lambda seed: _jpeg_bytes(distinct_image(seed, (640, 480))), range(distinct)))
    paths = [folder / f"photo-{i:06d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        path.write_bytes(blobs[i % distinct])
    return paths


def _jpeg_bytes(image: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def check_ingest(device: str, sync: Callable[[], None], images: int, workers: int, batch_size: int) -> dict[str, Any]:
    """Return ingest images/s with decode included (decode, thumbnail, preprocess in threads; encode in batches)."""
    from concurrent.futures import ThreadPoolExecutor

    from core.settings import EncoderSettings
    from index.encoders import get_encoder
    from index.ingest.images import encoder_ready, open_image, thumbnail_jpeg

    model = "ViT-B-32" if device.startswith("cuda") else "tiny-clip"
    encoder = get_encoder(EncoderSettings(model=model, pretrained="none", device=device, batch_size=batch_size))

    def prepare(path: Path) -> Any:
        image, _ = open_image(path, 64_000_000)
        thumbnail_jpeg(image, 256, 85)
        return encoder.preprocess(encoder_ready(image))

    window = batch_size * 4  # decoded images waiting for the encoder, as bounded as the pipeline's
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        paths = _jpegs(Path(tmp), images)
        encoder.encode_preprocessed(list(pool.map(prepare, paths[:batch_size])))  # warm-up
        sync()
        started = time.perf_counter()
        decoded = [t for start in range(0, images, window) for t in pool.map(prepare, paths[start : start + window])]
        decode_s = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, images, batch_size):
            encoder.encode_preprocessed(decoded[start : start + batch_size])
        sync()
        encode_s = time.perf_counter() - started
        del decoded
        started = time.perf_counter()
        pending = pool.map(prepare, paths[:window])
        for start in range(0, images, window):
            ready = list(pending)
            if start + window < images:  # decode the next window while this one is encoded
                pending = pool.map(prepare, paths[start + window : start + 2 * window])
            for offset in range(0, len(ready), batch_size):
                encoder.encode_preprocessed(ready[offset : offset + batch_size])
        sync()
        end_to_end_s = time.perf_counter() - started
    return {
        "model": f"{model} (random weights)",
        "runtime": type(encoder).__name__,
        "images": images,
        "image_size": "640x480 JPEG",
        "decode_workers": workers,
        "batch_size": batch_size,
        "decode_only_images_per_s": round(images / decode_s, 1),
        "encode_only_images_per_s": round(images / encode_s, 1),
        "end_to_end_images_per_s": round(images / end_to_end_s, 1),
        "goal": ">= 2500 images/s end to end on one H100/H200-class GPU",
    }


def main() -> int:
    """Run the check and print the report; always exit 0 when the code path works."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ingest-images", type=int, default=4096, help="JPEGs for the ingest check (CPU: 64)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode threads")
    parser.add_argument("--batch-size", type=int, default=256, help="encoder batch for the ingest check")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": cuda,
        "device_name": torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine()),
    }
    if not cuda:
        print("no CUDA device: running the CPU path briefly (tiny pipeline, tiny encoder)", file=sys.stderr)
    repeat = 10 if cuda else 2
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report["pipeline"] = check_pipeline(Path(tmp), device, sync, repeat)
        report["pipeline"]["build_and_all_runs_s"] = round(time.perf_counter() - started, 2)
    report["encoder"] = check_encoder(device, sync, repeat)
    images = args.ingest_images if cuda else min(args.ingest_images, 64)
    report["ingest"] = check_ingest(device, sync, images, args.workers, args.batch_size if cuda else 32)
    if cuda:
        report["max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
