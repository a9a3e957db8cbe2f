"""Export an open_clip model's towers to ONNX once, cached under the data dir by a hash of config and weights.

Layout: ``<export_dir>/onnx/<key>/{image,text}.onnx`` (fp32), ``{image,text}-int8.onnx`` (made on first use of
int8) and ``meta.json``. The key hashes the model's module tree, its weights and this exporter's version, so a
changed model never picks up a stale export. Each export is checked against torch before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXPORT_VERSION = 2  # bump when the exported graphs change
OPSET = 17
_CHECK_COSINE = 0.9999  # an fp32 export must match torch this closely on its probe inputs


class ExportError(RuntimeError):
    """The model could not be exported to ONNX, or the export did not match torch."""


@dataclass(frozen=True)
class ExportedTowers:
    """Paths of one model's exported towers and what the runtime needs to feed them."""

    image: Path
    text: Path
    dim: int
    short_text: bool  # the text graph takes (N, L) tokens cut after the batch's last end token


def weights_digest(model: Any) -> str:
    """Return a sha256 over every parameter and buffer (name, dtype, shape, bytes) of a torch model."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}".encode())
        digest.update(array.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_key(model_name: str, model: Any) -> str:
    """Return the cache key of a model's export: its name, module tree (the config) and weights."""
    config = f"{model_name}\n{model!r}\nexport-v{EXPORT_VERSION}-opset{OPSET}"
    return hashlib.sha256(f"{config}\n{weights_digest(model)}".encode()).hexdigest()[:24]


def ensure_exported(export_dir: Path, model_name: str, model: Any, tokenizer: Any, quantize: str) -> ExportedTowers:
    """Return the model's exported towers (int8 when ``quantize`` says so), exporting them on first use."""
    from filelock import FileLock

    folder = export_dir.expanduser().resolve() / "onnx" / export_key(model_name, model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):  # one exporter per model, across processes
        if not (folder / "meta.json").exists():
            _export(folder, model_name, model, tokenizer)
        meta = json.loads((folder / "meta.json").read_text())
        towers = ExportedTowers(folder / "image.onnx", folder / "text.onnx", int(meta["dim"]), meta["short_text"])
        if quantize == "int8":
            towers = ExportedTowers(_int8(towers.image), _int8(towers.text), towers.dim, towers.short_text)
    return towers


def _export(folder: Path, model_name: str, model: Any, tokenizer: Any) -> None:
    import copy

    import torch

    from index.encoders.onnx_towers import (
        ClassTokenImageTower,
        ImageTower,
        ShortTextTower,
        TextTower,
        supports_class_token_tower,
        supports_short_text,
        use_export_attention,
    )

    log.info("exporting %s to ONNX in %s (once per model and weights)", model_name, folder)
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    lean = copy.deepcopy(model).float().eval()
    use_export_attention(lean)
    size = getattr(lean.visual, "image_size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    pixels = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    tokens = tokenizer(["a photo of a dog on the beach at sunset", "x"])
    short = supports_short_text(lean)
    text_tower = ShortTextTower(lean) if short else TextTower(lean)
    text_axes = {0: "batch", 1: "length"} if short else {0: "batch"}
    try:
        image_tower = ClassTokenImageTower(lean) if supports_class_token_tower(lean) else ImageTower(lean)
        _export_one(image_tower, pixels, staging / "image.onnx", "pixels", {0: "batch"})
        _export_one(text_tower, tokens, staging / "text.onnx", "tokens", text_axes)
        with torch.inference_mode():
            want_image = model.encode_image(pixels).float().numpy()
            want_text = model.encode_text(tokens).float().numpy()
        _check(staging / "image.onnx", "pixels", pixels.numpy(), want_image)
        _check(staging / "text.onnx", "tokens", cut_tokens(tokens.numpy()) if short else tokens.numpy(), want_text)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"could not export {model_name} to ONNX: {exc}") from exc
    meta = {"model": model_name, "dim": int(want_text.shape[1]), "short_text": short, "version": EXPORT_VERSION}
    (staging / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def _export_one(tower: Any, example: Any, path: Path, input_name: str, axes: dict[int, str]) -> None:
    import warnings

    import torch

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            tower,
            (example,),
            str(path),
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, dynamic batch and length
            input_names=[input_name],
            output_names=["features"],
            dynamic_axes={input_name: axes, "features": {0: "batch"}},
            opset_version=OPSET,
        )


def cut_tokens(tokens: np.ndarray) -> np.ndarray:
    """Return ``tokens`` without the columns after the last end token of any row (the end token is the max id)."""
    return tokens[:, : int(tokens.argmax(axis=1).max()) + 1]


def _check(path: Path, input_name: str, example: np.ndarray, want: np.ndarray) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: example})[0]
    cosine = (got * want).sum(1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-12)
    if float(cosine.min()) < _CHECK_COSINE:
        raise ExportError(f"{path.name} differs from torch (cosine {float(cosine.min()):.6f})")


def _int8(fp32: Path) -> Path:
    """Return the dynamically quantized (int8 weights, per-tensor, QOperator) copy of an fp32 graph."""
    target = fp32.with_name(fp32.stem + "-int8.onnx")
    if not target.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        staging = target.with_name(f".{target.name}.{os.getpid()}")
        quantize_dynamic(fp32, staging, weight_type=QuantType.QInt8)
        staging.replace(target)
    return target
