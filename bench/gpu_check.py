"""GPU check: on CUDA, run the tiny-random pipeline and a ViT-B-32 encode in fp16 and print timings.

Without CUDA it says so, runs the same code path briefly on CPU (tiny pipeline, tiny encoder) and exits 0.
Needs torch, diffusers, transformers, open_clip_torch, pydantic and pydantic-settings; no database, broker or FAISS
(so it runs on a bare GPU machine with the project on PYTHONPATH). Weights are random: no downloads.

Run: PYTHONPATH=. python bench/gpu_check.py [--json]
"""

from __future__ import annotations

import argparse
import json
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


def main() -> int:
    """Run the check and print the report; always exit 0 when the code path works."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
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
    if cuda:
        report["max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
