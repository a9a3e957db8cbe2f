"""One factory for encoders: settings in, a cached encoder out (one per configuration per process)."""

from __future__ import annotations

import logging
import threading

from core.settings import EncoderSettings, get_settings
from index.encoders.base import Encoder, EncoderWeightsUnavailable

log = logging.getLogger(__name__)

_cache: dict[str, Encoder] = {}
_lock = threading.Lock()
# Settings that change neither the model nor how it runs: one encoder serves them all.
_NOT_THE_MODEL = {"export_dir", "query_cache_size", "query_batch_wait_ms", "query_batch_max"}


def get_encoder(settings: EncoderSettings | None = None) -> Encoder:
    """Return the encoder for these settings (default: the process settings), built once and cached."""
    settings = settings or get_settings().encoder
    key = settings.model_dump_json(exclude=_NOT_THE_MODEL)
    with _lock:
        encoder = _cache.get(key)
        if encoder is None:
            encoder = _build(settings)
            _cache[key] = encoder
    return encoder


def resolve_runtime(settings: EncoderSettings) -> str:
    """Return ``torch`` or ``onnx``: ``auto`` is ONNX Runtime on CPU (and for int8), torch on CUDA."""
    if settings.runtime != "auto":
        return settings.runtime
    if settings.quantize == "int8":
        return "onnx"
    from index.encoders.openclip import resolve_device

    return "torch" if resolve_device(settings.device).startswith("cuda") else "onnx"


def _build(settings: EncoderSettings) -> Encoder:
    from index.encoders.onnx_export import ExportError
    from index.encoders.openclip import OpenClipEncoder

    if resolve_runtime(settings) == "torch":
        if settings.quantize == "int8":
            raise EncoderWeightsUnavailable(
                "SENSORIUM_ENCODER__QUANTIZE=int8 runs on ONNX Runtime: set SENSORIUM_ENCODER__RUNTIME=onnx (or auto)"
            )
        return OpenClipEncoder(settings)
    try:
        from index.encoders.onnx_encoder import OnnxClipEncoder

        export_dir = settings.export_dir or get_settings().data_dir / "models"
        return OnnxClipEncoder(settings, export_dir)
    except (ImportError, ExportError) as exc:
        if settings.runtime == "auto" and settings.quantize == "none":
            log.warning("ONNX Runtime path unavailable (%s); encoding with torch instead", exc)
            return OpenClipEncoder(settings)
        raise EncoderWeightsUnavailable(
            f"the ONNX encoder runtime is unavailable: {exc}. Install onnx and onnxruntime "
            "(pip install onnx onnxruntime) or set SENSORIUM_ENCODER__RUNTIME=torch"
        ) from exc
