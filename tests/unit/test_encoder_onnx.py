"""The ONNX Runtime encoder: same vectors as torch, exported once per model and weights, int8 apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.settings import EncoderSettings, Settings
from index.encoders import EncoderWeightsUnavailable, get_encoder
from index.encoders.factory import resolve_runtime
from index.encoders.onnx_encoder import OnnxClipEncoder
from index.encoders.openclip import OpenClipEncoder
from tests.media_images import distinct_image

TINY = EncoderSettings(model="tiny-clip", pretrained="none", batch_size=4)
TEXTS = ["a dog", "A RED CAR at night", "x " * 3000, "", "a photo of a cat sitting on a mat in the afternoon sun"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_vectors_match_torch_for_the_tiny_config(export_dir: Path) -> None:
    onnx = OnnxClipEncoder(TINY, export_dir)
    torch_encoder = OpenClipEncoder(TINY)
    images = [distinct_image(seed, (96 + seed, 64)) for seed in range(10)]  # two batches and a remainder
    assert _cosines(onnx.encode_images(images), torch_encoder.encode_images(images)).min() >= 0.999
    # Texts of very different lengths in one batch: the ONNX text graph is cut after the longest one.
    assert _cosines(onnx.encode_texts(TEXTS), torch_encoder.encode_texts(TEXTS)).min() >= 0.999
    alone = np.concatenate([onnx.encode_texts([text]) for text in TEXTS])
    assert np.allclose(alone, onnx.encode_texts(TEXTS), atol=1e-5)
    assert onnx.model_id == torch_encoder.model_id == "open_clip:tiny-clip:random-seed0"
    assert onnx.dim == torch_encoder.dim == 64


def test_export_is_cached_by_config_and_weights(export_dir: Path) -> None:
    OnnxClipEncoder(TINY, export_dir)
    folders = [p for p in (export_dir / "onnx").iterdir() if p.is_dir()]
    assert len(folders) == 1 and {"image.onnx", "text.onnx", "meta.json"} <= {p.name for p in folders[0].iterdir()}
    stamp = (folders[0] / "image.onnx").stat().st_mtime_ns
    OnnxClipEncoder(TINY, export_dir)  # same model and weights: reused, not exported again
    assert (folders[0] / "image.onnx").stat().st_mtime_ns == stamp
    other = OnnxClipEncoder(TINY.model_copy(update={"seed": 1}), export_dir)  # other weights: a new export
    assert len([p for p in (export_dir / "onnx").iterdir() if p.is_dir()]) == 2
    assert not np.allclose(other.encode_texts(["a dog"]), OnnxClipEncoder(TINY, export_dir).encode_texts(["a dog"]))


def test_int8_is_close_but_has_its_own_model_id(export_dir: Path) -> None:
    int8 = OnnxClipEncoder(TINY.model_copy(update={"quantize": "int8"}), export_dir)
    fp32 = OnnxClipEncoder(TINY, export_dir)
    images = [distinct_image(seed) for seed in range(8)]
    assert _cosines(int8.encode_images(images), fp32.encode_images(images)).min() >= 0.98
    assert _cosines(int8.encode_texts(TEXTS), fp32.encode_texts(TEXTS)).min() >= 0.98
    assert int8.model_id == "open_clip:tiny-clip:random-seed0:int8" != fp32.model_id


def test_runtime_choice(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encoder=TINY)
    assert settings.encoder.export_dir == tmp_path / "models"  # exports live in the data dir
    assert resolve_runtime(TINY) == "onnx"  # auto on CPU
    assert resolve_runtime(TINY.model_copy(update={"runtime": "torch"})) == "torch"
    assert isinstance(get_encoder(settings.encoder), OnnxClipEncoder)
    assert isinstance(get_encoder(TINY.model_copy(update={"runtime": "torch"})), OpenClipEncoder)
    with pytest.raises(EncoderWeightsUnavailable, match="RUNTIME=onnx"):
        get_encoder(TINY.model_copy(update={"runtime": "torch", "quantize": "int8"}))
