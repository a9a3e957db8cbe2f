"""Benchmark media decoding and transcription; prints one JSON object.

Run: PYTHONPATH=. python bench/media.py
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import MediaSettings, WhisperSettings
from index.media.audio import load_audio, spectrogram_windows
from index.media.video import iter_scenes
from tests.media_factory import SCENE_COLORS, make_scene_video

VIDEO_S = 60.0
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech.wav"


def timed(fn: Any) -> tuple[Any, float]:
    """Return fn()'s result and the wall seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    """Run every benchmark and print the figures as JSON."""
    settings = MediaSettings()
    report: dict[str, Any] = {"machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        # 12 scenes of 5 s; x264 "veryfast" keeps B-frames and a 250-frame GOP, like ordinary files.
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(VIDEO_S * 16000)) / 16000)).astype(np.float32)
        video, encode_s = timed(
            lambda: make_scene_video(
                Path(tmp) / "bench.mp4", SCENE_COLORS * 2, scene_s=5.0, with_audio=tone, preset="veryfast"
            )
        )
        scenes, scene_s = timed(lambda: list(iter_scenes(video, settings)))
        audio, audio_s = timed(lambda: load_audio(video, settings))
        windows, window_s = timed(lambda: list(spectrogram_windows(audio, settings)))
    report["video"] = {
        "clip": "60 s, 640x360, 30 fps, h264 veryfast, 12 scenes of 5 s",
        "encode_s": round(encode_s, 2),
        "scenes_found": len(scenes),
        "scene_detect_video_s_per_s": round(VIDEO_S / scene_s, 1),
    }
    report["audio"] = {
        "decode_audio_s_per_s": round(len(audio) / 16000 / audio_s, 1),
        "spectrogram_windows": len(windows),
        "spectrogram_windows_per_s": round(len(windows) / window_s, 1),
    }
    report["transcription"] = transcription_figures()
    print(json.dumps(report, indent=2))


def transcription_figures() -> dict[str, Any]:
    """Return tiny.en (faster-whisper, CPU int8) load time and real-time factor on the speech fixture."""
    from index.transcribe import TranscriberUnavailable, get_transcriber

    speech = load_audio(SPEECH, MediaSettings())
    try:
        transcriber, load_s = timed(lambda: get_transcriber(WhisperSettings(model="tiny.en", device="cpu")))
    except TranscriberUnavailable as exc:
        return {"skipped": str(exc)}
    segments, first_s = timed(lambda: transcriber.transcribe(speech))
    _, warm_s = timed(lambda: transcriber.transcribe(speech))
    duration = len(speech) / 16000
    return {
        "model": "tiny.en faster-whisper cpu int8",
        "load_s": round(load_s, 2),
        "audio_s": round(duration, 2),
        "real_time_factor_first": round(first_s / duration, 3),
        "real_time_factor_warm": round(warm_s / duration, 3),
        "text": " ".join(s.text for s in segments),
    }


if __name__ == "__main__":
    main()
