"""Measure peak GPU memory of the built-in generators' architectures and of the CLIP encoder, with random weights.

Weights do not change how much memory a forward pass takes, so the real architectures built from their published
configs with random weights give the same figures as the downloaded models, offline. Usage (on a CUDA machine):
``python deploy/gpu_memory.py > gpu-memory.jsonl``; each line is one measured case. The numbers in deploy/README.md
came from this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

GIB = 1024**3

# Stable Diffusion 1.5 (runwayml / stable-diffusion-v1-5 unet/config.json, text_encoder: CLIP ViT-L/14 text tower).
SD15_UNET: dict[str, Any] = {"cross_attention_dim": 768, "attention_head_dim": 8, "use_linear_projection": False}
SD15_TEXT: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
# SD-Turbo is Stable Diffusion 2.1 (stabilityai/sd-turbo unet/config.json, text_encoder: OpenCLIP ViT-H/14 text tower).
TURBO_UNET: dict[str, Any] = {
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
}
TURBO_TEXT: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "projection_dim": 512,
    "hidden_act": "gelu",
}
UNET_COMMON: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "sample_size": 512,
}
# (generator, width = height, images per request, guidance scale, VAE slicing): the registry's defaults up to its
# limits (max_n 8; 768 px for sd-turbo, 1024 px for sd15). Workers decode without slicing; the sliced rows show the gain.
CASES: list[tuple[str, int, int, float, bool]] = [
    ("sd-turbo", 512, 1, 0.0, False),
    ("sd-turbo", 512, 4, 0.0, False),
    ("sd-turbo", 768, 1, 0.0, False),
    ("sd-turbo", 768, 8, 0.0, False),
    ("sd-turbo", 768, 8, 0.0, True),
    ("sd15", 512, 1, 7.5, False),
    ("sd15", 512, 4, 7.5, False),
    ("sd15", 512, 8, 7.5, False),
    ("sd15", 512, 8, 7.5, True),
    ("sd15", 768, 1, 7.5, False),
    ("sd15", 1024, 1, 7.5, False),
]


def build_pipeline(name: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """Return (StableDiffusionPipeline without tokenizer, text encoder) with random weights for ``name``."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg, text_cfg = (TURBO_UNET, TURBO_TEXT) if name == "sd-turbo" else (SD15_UNET, SD15_TEXT)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_COMMON, **unet_cfg)
    vae = AutoencoderKL(**VAE)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **text_cfg))
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=None,
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe, text


@contextmanager
def peak(device: str) -> Iterator[dict[str, float]]:
    """Yield a dict filled on exit with peak allocated/reserved GiB over the block (zeros off CUDA)."""
    import torch

    out: dict[str, float] = {}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    yield out
    if cuda:
        torch.cuda.synchronize()
    out["seconds"] = round(time.perf_counter() - start, 3)
    out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3) if cuda else 0.0
    out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 3) if cuda else 0.0


def generate_case(
    pipe: Any, text: Any, size: int, n: int, guidance: float, steps: int, device: str
) -> Callable[[], None]:
    """Return a callable that runs one generation request the way the worker does (one prompt, n images)."""
    import torch

    ids = torch.randint(0, 49408, (1, 77), device=device)

    def run() -> None:
        with torch.inference_mode():
            embeds = text(ids)[0]
            negative = text(torch.zeros_like(ids))[0] if guidance > 1 else None
            pipe(
                prompt_embeds=embeds,
                negative_prompt_embeds=negative,
                num_images_per_prompt=n,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                output_type="np",
            )

    return run


def params_gib(module: Any) -> float:
    """Return the size of a module's parameters in GiB."""
    return round(sum(p.numel() * p.element_size() for p in module.parameters()) / GIB, 3)


def measure_generators(device: str, dtype: Any, smoke: bool, steps: int) -> Iterator[dict[str, Any]]:
    """Yield one record per generation case: weights and peak memory during a request."""
    import gc

    import torch

    for name in ("sd-turbo", "sd15"):
        pipe, text = build_pipeline(name, device, dtype)
        weights = {part: params_gib(getattr(pipe, part)) for part in ("unet", "vae", "text_encoder")}
        cases = [(size, n, guidance, slicing) for case_name, size, n, guidance, slicing in CASES if case_name == name]
        if smoke:
            cases = [(64, 1, cases[0][2], False)]
        for size, n, guidance, slicing in cases:
            if slicing:
                pipe.vae.enable_slicing()
            else:
                pipe.vae.disable_slicing()
            with peak(device) as stats:
                generate_case(pipe, text, size, n, guidance, steps, device)()
            yield {
                "case": "generate",
                "generator": name,
                "size": size,
                "n": n,
                "guidance": guidance,
                "vae_slicing": slicing,
                "weights_gib": weights,
                **stats,
            }
        del pipe, text
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def measure_encoder(device: str, dtype: Any, batch: int) -> dict[str, Any]:
    """Return peak memory of one ViT-B-32 image batch (ingest's default encoder and batch size)."""
    import open_clip
    import torch

    model = open_clip.create_model("ViT-B-32", pretrained=None).to(device, dtype).eval()
    images = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
    with peak(device) as stats, torch.inference_mode():
        model.encode_image(images)
    return {"case": "encode", "model": "ViT-B-32", "batch": batch, "weights_gib": params_gib(model), **stats}


def cuda_context_gib(device: str) -> float:
    """Return GPU memory in use beyond PyTorch's own allocations (CUDA context, libraries), in GiB."""
    import torch

    if not device.startswith("cuda"):
        return 0.0
    torch.ones(1, device=device)
    free, total = torch.cuda.mem_get_info()
    return round((total - free - torch.cuda.memory_reserved()) / GIB, 3)


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per measurement."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument(
        "--smoke", action="store_true", help="one 64 px image per generator (checks the script off GPU)"
    )
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (peak memory does not grow with them)")
    parser.add_argument("--encoder-batch", type=int, default=32)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    env = {
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
    }
    print(json.dumps({"case": "env", **env, "cuda_context_gib": cuda_context_gib(args.device)}), flush=True)
    print(json.dumps(measure_encoder(args.device, dtype, args.encoder_batch)), flush=True)
    for record in measure_generators(args.device, dtype, args.smoke, args.steps):
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
