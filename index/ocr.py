"""Read the text in a picture: PP-OCRv4 through rapidocr-onnxruntime (models ship inside the wheel), lines
with their box and confidence; CUDA through onnxruntime-gpu where it is installed and usable."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

OCR_HINT = "install it with `pip install rapidocr-onnxruntime==1.4.4` (Python < 3.13), or set SENSORIUM_OCR__ENABLED=false"
# PP-OCR's recogniser often runs the words of a line together ("Enabletwo-factorauthentication"); letter runs at
# least this long are split back into words by English word frequencies.
_GLUED = re.compile(r"[A-Za-z]{4,}")


class OcrUnavailable(RuntimeError):
    """The OCR engine cannot be loaded; the message says how to fix it."""


@dataclass(frozen=True)
class OcrLine:
    """One line of text: words (spaces restored), the recogniser's raw output, its box (4 x,y points), confidence."""

    text: str
    raw: str
    box: list[list[float]]
    confidence: float


class OcrEngine:
    """PP-OCR detection, orientation and recognition models in onnxruntime sessions, loaded once."""

    def __init__(self, device: str = "auto") -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable(f"rapidocr-onnxruntime is not installed: {OCR_HINT}. {exc}") from exc
        self.device = _device(device)
        cuda = self.device == "cuda"
        self._ocr = RapidOCR(det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)
        # One call at a time: a session's buffers are shared, and onnxruntime already uses every core per call.
        self._lock = threading.Lock()

    def read(self, image: Image.Image, min_confidence: float = 0.0) -> list[OcrLine]:
        """Return the text lines of an RGB image, top to bottom, keeping those at ``min_confidence`` or above."""
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # RapidOCR wants BGR
        with self._lock:
            found, _elapsed = self._ocr(pixels)
        lines = []
        for box, raw, confidence in found or []:
            raw = str(raw).strip()
            if raw and float(confidence) >= min_confidence:
                box_points = [[round(float(x), 1), round(float(y), 1)] for x, y in box]
                lines.append(OcrLine(restore_spaces(raw), raw, box_points, round(float(confidence), 4)))
        return lines


def restore_spaces(raw: str) -> str:
    """Return OCR output with the spaces between run-together English words put back."""
    import wordninja

    return _GLUED.sub(lambda match: " ".join(wordninja.split(match.group())), raw)


def get_ocr_engine(device: str = "auto") -> OcrEngine:
    """Return the process's OCR engine for ``device`` (loaded on first use, then reused)."""
    return _cached_engine(device)


@lru_cache(maxsize=2)
def _cached_engine(device: str) -> OcrEngine:
    return OcrEngine(device)


def _device(device: str) -> str:
    """Return ``cuda`` or ``cpu`` for a setting: auto picks CUDA when onnxruntime offers its CUDA provider."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown OCR device {device!r}; use auto, cpu or cuda")
    if device == "cpu":
        return "cpu"
    providers: list[Any] = []
    try:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    except ImportError as exc:
        raise OcrUnavailable(f"onnxruntime is not installed: {OCR_HINT}. {exc}") from exc
    if "CUDAExecutionProvider" in providers:
        return "cuda"
    if device == "cuda":
        raise OcrUnavailable("OCR on CUDA needs onnxruntime-gpu: `pip install onnxruntime-gpu` (in place of onnxruntime)")
    return "cpu"
