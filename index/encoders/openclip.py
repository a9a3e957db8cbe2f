"""open_clip encoder: the model (what runs) apart from the runtime (device, precision)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from core.settings import EncoderSettings
from index.encoders.base import EncoderWeightsUnavailable
from index.offline import RANDOM_WEIGHTS

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"

_HOW_TO = (
    "Provide the weights in one of these ways:\n"
    "  - on a machine with internet access, run once so they land in the Hugging Face cache "
    "(~/.cache/huggingface), then copy that cache here;\n"
    "  - download the model's open_clip weights file (e.g. `hf download "
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K open_clip_model.safetensors`, the `hf` CLI of huggingface_hub) and set "
    "SENSORIUM_ENCODER__PRETRAINED=/path/to/open_clip_model.safetensors;\n"
    "  - or point SENSORIUM_ENCODER__MODEL at `local-dir:/path` (a folder with open_clip_config.json and weights);\n"
    "  - or, knowing that text search scores then mean nothing, go on with seeded random weights: "
    "SENSORIUM_ENCODER__PRETRAINED=none."
)


def register_bundled_configs() -> None:
    """Make Sensorium's bundled model configs (e.g. ``tiny-clip``) known to open_clip."""
    import open_clip

    if "tiny-clip" not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def resolve_device(requested: str) -> str:
    """Return the torch device for ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderWeightsUnavailable(f"encoder device {requested!r} requested but CUDA is not available")
    return requested


def model_id_for(settings: EncoderSettings) -> str:
    """Return the identifier recorded with every vector this configuration produces."""
    pretrained = settings.pretrained.strip()
    weights = f"random-seed{settings.seed}" if pretrained.lower() in RANDOM_WEIGHTS else pretrained
    # fp32 and fp16, on torch or ONNX Runtime, give interchangeable vectors; int8 does not.
    suffix = ":int8" if settings.quantize == "int8" else ""
    return f"open_clip:{settings.model}:{weights}{suffix}"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Return whether the model hub answers a TCP connect (saves ~50 s of retries when offline)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _use_cache_only() -> None:
    import huggingface_hub.constants as hf_constants

    hf_constants.HF_HUB_OFFLINE = True


def build_model(settings: EncoderSettings) -> tuple[Any, Any, Any]:
    """Return the open_clip model (CPU, fp32, eval), its image preprocessing and its tokenizer."""
    import open_clip
    import torch

    register_bundled_configs()

    name = settings.model
    pretrained: str | None = settings.pretrained.strip()
    if not name.startswith(("hf-hub:", "local-dir:")) and name not in open_clip.list_models():
        raise EncoderWeightsUnavailable(
            f"unknown open_clip model {name!r}: set SENSORIUM_ENCODER__MODEL to a name open_clip knows "
            "(e.g. ViT-B-32; see open_clip.list_models()), `local-dir:/path` or `hf-hub:org/repo`"
        )
    if pretrained is not None and pretrained.lower() in RANDOM_WEIGHTS:
        # Identical weights in every process: ingest and search processes must agree on the space.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
        return model.eval(), preprocess, open_clip.get_tokenizer(name)
    if pretrained is not None and pretrained.startswith("hf-hub:"):
        name, pretrained = pretrained, None
    is_local_file = pretrained is not None and Path(pretrained).expanduser().exists()
    needs_hub = name.startswith("hf-hub:") or (pretrained is not None and not is_local_file)
    if needs_hub and not hub_reachable():
        _use_cache_only()
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(Path(pretrained).expanduser()) if is_local_file and pretrained else pretrained
        )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # open_clip raises RuntimeError, hub errors, OSError, KeyError for unknown names
        raise EncoderWeightsUnavailable(
            f"Could not load open_clip model {settings.model!r} with pretrained "
            f"{settings.pretrained!r}: {exc}\n{_HOW_TO}"
        ) from exc
    return model.eval(), preprocess, tokenizer


def normalise(features: np.ndarray) -> np.ndarray:
    """Return the rows scaled to unit length, as float32."""
    array = np.asarray(features, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


class OpenClipEncoder:
    """An open_clip model with its preprocessing and tokenizer, on one device."""

    def __init__(self, settings: EncoderSettings) -> None:
        import torch

        self.settings = settings
        self.model_id = model_id_for(settings)
        self.device = resolve_device(settings.device)
        self._fp16 = self.device.startswith("cuda")
        self._lock = threading.Lock()
        model, preprocess, tokenizer = build_model(settings)
        self._model = model.to(self.device).eval()
        if self._fp16:
            self._model = self._model.half()
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        with torch.inference_mode():
            probe = self._model.encode_text(self._tokenizer(["probe"]).to(self.device))
        self.dim = int(probe.shape[-1])

    def preprocess(self, image: Image.Image) -> Any:
        """Return the model-ready tensor for one RGB image."""
        return self._preprocess(image)

    def encode_preprocessed(self, batch: list[Any]) -> np.ndarray:
        """Return normalised vectors for preprocessed tensors, in batches of the configured size."""
        import torch

        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        size = self.settings.batch_size
        with self._lock, torch.inference_mode():
            for start in range(0, len(batch), size):
                pixels = torch.stack(batch[start : start + size]).to(self.device)
                if self._fp16:
                    pixels = pixels.half()
                out.append(normalise(self._model.encode_image(pixels).float().cpu().numpy()))
        return np.concatenate(out)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Return normalised vectors, one row per RGB image."""
        return self.encode_preprocessed([self.preprocess(image) for image in images])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Return normalised vectors, one row per text (long texts are truncated to the context length)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.settings.batch_size):
                tokens = self._tokenizer(texts[start : start + self.settings.batch_size]).to(self.device)
                out.append(normalise(self._model.encode_text(tokens).float().cpu().numpy()))
        return np.concatenate(out)
