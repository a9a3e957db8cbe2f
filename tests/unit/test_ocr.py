"""OCR engine: spaces restored between run-together words, device choice, real PP-OCR on a rendered line."""

from __future__ import annotations

import numpy as np
import pytest

from index.ocr import OcrUnavailable, _device, get_ocr_engine, restore_spaces
from tests.ocr_images import fonts, render

pytest.importorskip("rapidocr_onnxruntime", reason="OCR models ship in rapidocr-onnxruntime (Python < 3.13)")


def test_spaces_come_back_between_glued_words() -> None:
    assert restore_spaces("Enabletwo-factorauthentication") == "Enable two-factor authentication"
    assert restore_spaces("Changepassword: 12 items") == "Change password: 12 items"
    assert restore_spaces("Q3") == "Q3"


def test_device_choice_follows_onnxruntime_providers() -> None:
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert _device("cpu") == "cpu"
    assert _device("auto") == ("cuda" if has_cuda else "cpu")
    if not has_cuda:
        with pytest.raises(OcrUnavailable, match="onnxruntime-gpu"):
            _device("cuda")
    with pytest.raises(ValueError, match="unknown OCR device"):
        _device("tpu")


def test_a_rendered_line_is_read_with_box_and_confidence() -> None:
    item = render(["Quarterly shipping volume"], fonts()[0], 16, np.random.default_rng(0), size=(400, 120))
    lines = get_ocr_engine("cpu").read(item.image, min_confidence=0.5)
    assert [line.text.lower() for line in lines] == ["quarterly shipping volume"]
    (line,) = lines
    assert len(line.box) == 4 and 0.5 <= line.confidence <= 1.0
    xs = [x for x, _ in line.box]
    assert 0 <= min(xs) < max(xs) <= 400
    assert get_ocr_engine("cpu").read(item.image, min_confidence=1.01) == []
