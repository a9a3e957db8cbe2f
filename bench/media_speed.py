"""Media ingest speed with the real models on: audio with tiny.en transcription (beam 1 and 5, with word error
rate), and a 640x360 talk-style video (a slide change every 10 s, speech track) with OCR and transcription on.
Prints one JSON object; ``realtime_factor`` is media seconds ingested per wall second.

Run: PYTHONPATH=. python bench/media_speed.py [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import Segment
from core.settings import EncoderSettings, OcrSettings, Settings, WhisperSettings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from tests.media_factory import write_audio
from tests.ocr_images import fonts, render, words
from tests.scene_videos import make_scenes_video

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "the quarterly revenue of the lighthouse company grew by 12%"  # tests/fixtures/speech.wav
SLIDE_S = 10.0


def _speechy_audio(seconds: float) -> tuple[np.ndarray, int]:
    """Return the fixture sentence repeated with 1 s pauses for ``seconds``, and how many whole sentences it holds."""
    speech, _ = soundfile.read(REPO / "tests" / "fixtures" / "speech.wav", dtype="float32")
    unit = np.concatenate([speech, np.zeros(16000, dtype=np.float32)])
    reps = int(seconds * 16000 // unit.size)
    audio = np.tile(unit, reps + 1)[: int(seconds * 16000)]
    return audio + np.random.default_rng(0).normal(0, 0.002, audio.size).astype(np.float32), reps


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Return the word-level edit distance divided by the reference length."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1] / max(1, len(reference))


def _ingest(settings: Settings, folder: Path) -> tuple[float, float, Any]:
    started = time.perf_counter()
    summary = ingest(discover([folder], None), settings)
    wall = time.perf_counter() - started
    assert summary.failed == 0, summary.failures
    return summary.media_seconds, wall, summary


def _transcript(settings: Settings) -> str:
    with read_session(settings) as session:
        rows = session.execute(select(Segment.text).where(Segment.kind == "transcript").order_by(Segment.t_start))
        return " ".join(text or "" for text in rows.scalars())


def main() -> None:
    """Generate the media, ingest each in a fresh library, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    encoder = EncoderSettings(model="ViT-B-32", pretrained="none")
    from index.encoders import get_encoder
    from index.ocr import get_ocr_engine
    from index.transcribe import get_transcriber

    get_encoder(encoder)  # models load outside the timings
    get_ocr_engine()
    report: dict[str, Any] = {"encoder": "ViT-B-32 (random weights)", "whisper": "tiny.en faster-whisper int8 cpu",
                              "media_seconds": args.seconds, "machine": platform.processor() or platform.machine()}
    audio, reps = _speechy_audio(args.seconds)
    reference = _tokens(SENTENCE) * reps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for beam in (1, 5):
            whisper = WhisperSettings(device="cpu", beam_size=beam)
            get_transcriber(whisper)
            (root / f"audio-{beam}").mkdir()
            write_audio(root / f"audio-{beam}" / "talk.wav", audio)
            settings = Settings(data_dir=root / f"data-audio-{beam}", encoder=encoder, whisper=whisper)
            media, wall, _ = _ingest(settings, root / f"audio-{beam}")
            hypothesis = _tokens(_transcript(settings))[: len(reference) + 20]
            report[f"audio_beam_{beam}"] = {
                "realtime_factor": round(media / wall, 2),
                "wall_s": round(wall, 1),
                "word_error_rate": round(word_error_rate(reference, hypothesis), 3),
            }
        rng = np.random.default_rng(0)
        vocabulary = words()
        slides = []
        for index in range(int(args.seconds // SLIDE_S)):
            lines = [f"Part {index + 1}: " + " ".join(rng.choice(vocabulary, 2))]
            lines += [" ".join(str(w) for w in rng.choice(vocabulary, 4)) for _ in range(3)]
            slides.append(np.asarray(render(lines, fonts()[0], 26, rng, size=(640, 360)).image))
        (root / "video").mkdir()
        make_scenes_video(root / "video" / "talk.mp4", slides, [SLIDE_S] * len(slides), [("cut", 0.0)] * (len(slides) - 1),
                          fps=30, audio=audio[: int(SLIDE_S * len(slides) * 16000)])
        for label, whisper_on in (("ocr_on_transcription_on", True), ("ocr_on_transcription_off", False)):
            settings = Settings(data_dir=root / f"data-video-{label}", encoder=encoder, ocr=OcrSettings(),
                                whisper=WhisperSettings(device="cpu", enabled=whisper_on))
            media, wall, summary = _ingest(settings, root / "video")
            report[f"video_{label}"] = {
                "realtime_factor": round(media / wall, 2),
                "wall_s": round(wall, 1),
                "slides": len(slides),
                "ocr_pictures": summary.ocr_pictures,
                "ocr_s_per_picture": round(summary.ocr_seconds / max(1, summary.ocr_pictures), 3),
            }
    report["targets"] = {"audio_realtime_factor": 5.0, "video_realtime_factor": 5.0}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
