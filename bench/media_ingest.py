"""Media ingest throughput: seconds of video and audio ingested per wall second, transcription off and on.

Prints JSON. Uses ViT-B-32 with random weights (same cost as pretrained) unless SENSORIUM_ENCODER__* say otherwise.
Usage: python bench/media_ingest.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.settings import EncoderSettings, Settings  # noqa: E402
from index.ingest.discover import discover  # noqa: E402
from index.ingest.pipeline import ingest  # noqa: E402
from tests.media_factory import SCENE_COLORS, make_scene_video, write_audio  # noqa: E402


def _speechy_audio(seconds: float) -> np.ndarray:
    speech, _ = soundfile.read(REPO / "tests" / "fixtures" / "speech.wav", dtype="float32")
    gap = np.zeros(16000, dtype=np.float32)
    reps = int(seconds * 16000 // (speech.size + gap.size)) + 1
    return np.tile(np.concatenate([speech, gap]), reps)[: int(seconds * 16000)]


def _run(settings: Settings, folder: Path) -> tuple[float, float]:
    started = time.perf_counter()
    summary = ingest(discover([folder], None), settings)
    elapsed = time.perf_counter() - started
    assert summary.failed == 0, summary.failures
    return summary.media_seconds, elapsed


def main() -> None:
    """Ingest a generated 640x360 30 fps video (with a speech track) and an audio file, transcription off then on."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = _speechy_audio(args.seconds)
        scenes = [SCENE_COLORS[i % len(SCENE_COLORS)] for i in range(int(args.seconds // 5))]
        for label in ("off", "on"):
            for kind in ("video", "audio"):
                (root / label / kind).mkdir(parents=True)
            make_scene_video(
                root / label / "video" / "clip.mp4", scenes, scene_s=5.0, fps=30, size=(640, 360), with_audio=audio
            )
            write_audio(root / label / "audio" / "talk.wav", audio)
        encoder = EncoderSettings(model="ViT-B-32", pretrained="none")
        base = Settings(data_dir=root / "warm", encoder=encoder)
        from index.encoders import get_encoder

        get_encoder(encoder)  # build the model outside the timings
        report: dict[str, object] = {"encoder": "ViT-B-32 (random weights)", "media_seconds_per_file": args.seconds}
        for label in ("off", "on"):
            whisper = base.whisper.model_copy(update={"enabled": label == "on"})
            settings = base.model_copy(update={"data_dir": root / f"data-{label}", "whisper": whisper})
            for kind in ("video", "audio"):
                media_s, wall_s = _run(settings, root / label / kind)
                report[f"{kind}_transcription_{label}"] = {
                    "media_seconds": round(media_s, 1),
                    "wall_seconds": round(wall_s, 2),
                    "realtime_factor": round(media_s / wall_s, 2),
                }
        print(json.dumps(report))


if __name__ == "__main__":
    main()
