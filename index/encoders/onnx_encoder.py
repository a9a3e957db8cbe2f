"""open_clip towers run by ONNX Runtime: the same model and preprocessing as torch, another runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.settings import EncoderSettings
from index.encoders.base import EncoderWeightsUnavailable
from index.encoders.onnx_export import cut_tokens, ensure_exported
from index.encoders.openclip import build_model, model_id_for, normalise, resolve_device


def usable_cores() -> int:
    """Return the number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_options(threads: int, spinning: bool) -> Any:
    """Return ONNX Runtime options for one tower: ``threads`` intra-op threads, spinning between ops or not.

    The image tower runs long batches back to back (ingest), where spinning saves a few per cent. The text tower
    serves many short requests from serve's threads, where idle threads spinning would take the cores the other
    requests (and the ingest pipeline's decode threads) need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # warnings about hardware-specific fusions are noise here
    return options


def _providers(device: str) -> list[Any]:
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise EncoderWeightsUnavailable(
            "SENSORIUM_ENCODER__RUNTIME=onnx on CUDA needs the onnxruntime-gpu package; "
            "install it or use SENSORIUM_ENCODER__RUNTIME=torch there"
        )
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


class OnnxClipEncoder:
    """An open_clip model's image and text towers exported to ONNX and run with ONNX Runtime (fp32 or int8)."""

    def __init__(self, settings: EncoderSettings, export_dir: Path) -> None:
        import onnxruntime as ort

        self.settings = settings
        self.model_id = model_id_for(settings)
        self.device = resolve_device(settings.device)
        model, self._preprocess, self._tokenizer = build_model(settings)
        towers = ensure_exported(export_dir, settings.model, model, self._tokenizer, settings.quantize)
        del model  # the sessions hold their own copy of the weights
        self.dim = towers.dim
        self._short_text = towers.short_text
        threads = settings.onnx_threads or usable_cores()
        providers = _providers(self.device)
        self._image = ort.InferenceSession(str(towers.image), session_options(threads, True), providers=providers)
        self._text = ort.InferenceSession(str(towers.text), session_options(threads, False), providers=providers)

    def preprocess(self, image: Image.Image) -> Any:
        """Return the model-ready tensor for one RGB image (open_clip's own transform)."""
        return self._preprocess(image)

    def encode_preprocessed(self, batch: list[Any]) -> np.ndarray:
        """Return normalised vectors for preprocessed tensors, in batches of the configured size."""
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.settings.batch_size
        out = []
        for start in range(0, len(batch), size):
            pixels = np.stack([np.asarray(t, dtype=np.float32) for t in batch[start : start + size]])
            out.append(normalise(self._image.run(None, {"pixels": pixels})[0]))
        return np.concatenate(out)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Return normalised vectors, one row per RGB image."""
        return self.encode_preprocessed([self.preprocess(image) for image in images])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Return normalised vectors, one row per text (long texts are truncated to the context length)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.settings.batch_size
        out = []
        for start in range(0, len(texts), size):
            tokens = np.asarray(self._tokenizer(texts[start : start + size]), dtype=np.int64)
            if self._short_text:
                tokens = cut_tokens(tokens)
            out.append(normalise(self._text.run(None, {"tokens": tokens})[0]))
        return np.concatenate(out)
