"""The encoder factory: seeded random weights, local weight files and folders, and offline errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.settings import EncoderSettings
from index.encoders import EncoderWeightsUnavailable, get_encoder
from index.encoders.openclip import MODEL_CONFIG_DIR, OpenClipEncoder
from tests.media_images import distinct_image

REPO = Path(__file__).resolve().parents[2]
TINY = EncoderSettings(model="tiny-clip", pretrained="none")


def test_vectors_are_normalised_and_batched() -> None:
    encoder = get_encoder(TINY.model_copy(update={"batch_size": 3}))
    images = encoder.encode_images([distinct_image(i) for i in range(7)])
    texts = encoder.encode_texts(["a red square", "a dog", "x" * 5000])
    assert images.shape == (7, 64) and texts.shape == (3, 64) and images.dtype == np.float32
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert encoder.model_id == "open_clip:tiny-clip:random-seed0" and encoder.device == "cpu"


def test_random_weights_are_identical_in_every_process() -> None:
    here = get_encoder(TINY).encode_texts(["the same model everywhere"])[0]
    code = (
        "import json; from core.settings import EncoderSettings; from index.encoders import get_encoder; "
        "e = get_encoder(EncoderSettings(model='tiny-clip', pretrained='none')); "
        "print(json.dumps(e.encode_texts(['the same model everywhere'])[0].tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    there = np.array(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)
    assert np.allclose(here, there, atol=1e-6)
    other_seed = get_encoder(TINY.model_copy(update={"seed": 1})).encode_texts(["the same model everywhere"])[0]
    assert not np.allclose(here, other_seed, atol=1e-3)


def test_weights_file_and_local_dir_load(tmp_path: Path) -> None:
    import torch

    reference = OpenClipEncoder(TINY.model_copy(update={"seed": 3}))
    weights = tmp_path / "tiny.pt"
    torch.save(reference._model.state_dict(), weights)
    from_file = OpenClipEncoder(TINY.model_copy(update={"pretrained": str(weights)}))
    probe = [Image.new("RGB", (64, 48), "teal")]
    assert np.allclose(from_file.encode_images(probe), reference.encode_images(probe), atol=1e-5)
    assert from_file.model_id == f"open_clip:tiny-clip:{weights}"

    folder = tmp_path / "model"
    folder.mkdir()
    config = json.loads((MODEL_CONFIG_DIR / "tiny-clip.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.save(reference._model.state_dict(), folder / "open_clip_pytorch_model.bin")
    from_dir = OpenClipEncoder(EncoderSettings(model=f"local-dir:{folder}", pretrained=""))
    assert np.allclose(from_dir.encode_images(probe), reference.encode_images(probe), atol=1e-5)


def test_missing_weights_say_how_to_provide_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for settings in (
        EncoderSettings(model="tiny-clip", pretrained=str(tmp_path / "missing.safetensors")),
        EncoderSettings(model="ViT-B-32", pretrained="laion2b_s34b_b79k"),
    ):
        with pytest.raises(EncoderWeightsUnavailable) as caught:
            OpenClipEncoder(settings)
        message = str(caught.value)
        assert "SENSORIUM_ENCODER__PRETRAINED" in message and "Provide the weights" in message
    with pytest.raises(EncoderWeightsUnavailable, match="SENSORIUM_ENCODER__MODEL"):
        OpenClipEncoder(EncoderSettings(model="no-such-model", pretrained="none"))
