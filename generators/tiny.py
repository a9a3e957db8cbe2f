"""Build a tiny random-weight Stable Diffusion pipeline from configs, offline and identical in every process."""

from __future__ import annotations

import gzip
import importlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

# Files a finished save_pretrained folder holds; folders only appear at ``dest`` by an atomic rename, so a missing
# file means a foreign or damaged folder rather than a build in progress.
_REQUIRED_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)
CLIP_MAX_TOKENS = 77
_WEIGHT_SEED = 0


def is_complete(folder: Path) -> bool:
    """Return True when ``folder`` holds every file of a saved tiny pipeline."""
    return all((folder / name).is_file() for name in _REQUIRED_FILES)


def build_tiny_pipeline(dest: Path) -> Path:
    """Return ``dest`` holding the tiny pipeline, building it first unless it is already complete.

    Text-to-image and image-to-image share the folder: it loads as StableDiffusionPipeline or
    StableDiffusionImg2ImgPipeline alike. The build happens in a temporary sibling folder that is renamed into place,
    so racing processes never see a half-written folder; the loser discards its copy (the weights are identical).
    """
    return build_atomically(dest, _save_tiny_pipeline, is_complete)


def build_atomically(dest: Path, save: Callable[[Path], None], complete: Callable[[Path], bool]) -> Path:
    """Return ``dest`` after ``save`` filled a temporary sibling folder that was renamed into place (if incomplete)."""
    if complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
    try:
        save(staging)
        _publish(staging, dest, complete)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _publish(staging: Path, dest: Path, complete: Callable[[Path], bool]) -> None:
    try:
        os.rename(staging, dest)
        return
    except OSError:
        if complete(dest):
            return
    # ``dest`` is an incomplete leftover: move it aside (another process may do the same; losing that race is fine).
    stale = dest.with_name(f".{dest.name}.stale-{uuid.uuid4().hex}")
    with suppress(FileNotFoundError):
        os.rename(dest, stale)
    try:
        os.rename(staging, dest)
    except OSError:
        if not complete(dest):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _save_tiny_pipeline(folder: Path) -> None:
    import torch

    # Typed as Any: mypy sees diffusers' config-registering constructors as untyped and its lazy exports as dummies.
    diffusers: Any = importlib.import_module("diffusers")

    with tempfile.TemporaryDirectory() as bpe_dir:
        tokenizer = clip_tokenizer(Path(bpe_dir))
    # A private RNG stream: the weights never depend on what the caller drew before, and the caller's stream is
    # left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_WEIGHT_SEED)
        unet = diffusers.UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            norm_num_groups=2,
        )
        vae = diffusers.AutoencoderKL(
            block_out_channels=[32, 64],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
            up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
            latent_channels=4,
            norm_num_groups=2,
        )
        text_encoder = tiny_clip_text_encoder(tokenizer, layers=5, max_positions=CLIP_MAX_TOKENS)
    # Stable Diffusion 1.x's scheduler settings; steps_offset=1 avoids diffusers' "outdated config" warning.
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def tiny_clip_text_encoder(tokenizer: Any, layers: int, max_positions: int) -> Any:
    """Return a random-weight CLIP text encoder (width 32, 4 heads) sized for ``tokenizer``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=layers,
            vocab_size=len(tokenizer),
            max_position_embeddings=max_positions,
        )
    )


def clip_tokenizer(workdir: Path) -> Any:
    """Return a CLIPTokenizer written from open_clip's bundled BPE, so no hub download is needed."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    # The same slice and vocabulary order as OpenAI's CLIP (and open_clip), so token ids match real checkpoints:
    # 256 byte symbols, their word-final forms, one entry per merge, then the two special tokens.
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (workdir / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}), encoding="utf-8")
    (workdir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    # from_pretrained, not CLIPTokenizer(vocab_file=...): on transformers 5 the constructor yields a 2-token vocab.
    return CLIPTokenizer.from_pretrained(str(workdir), model_max_length=CLIP_MAX_TOKENS)
