"""Long media stream: a 30-minute video ingests in about the memory of a 1-minute one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.settings import Settings
from tests.conftest import TINY_ENCODER, env_for
from tests.media_factory import SCENE_COLORS, make_scene_video

REPO = Path(__file__).resolve().parents[2]
_MEASURE = """
import json, resource, sys
from api.cli import main
try:
    main(["ingest", sys.argv[1], "--json"])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _video(path: Path, minutes: float) -> Path:
    scenes = int(minutes * 2)  # a cut every 30 s
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(minutes * 60 * 16000))).astype(np.float32)
    colors = [SCENE_COLORS[i % len(SCENE_COLORS)] for i in range(scenes)]
    return make_scene_video(path, colors, scene_s=30.0, fps=5, size=(160, 90), with_audio=audio)


def _peak_rss(video: Path, data_dir: Path) -> float:
    env = env_for(Settings(data_dir=data_dir, encoder=TINY_ENCODER))
    env["SENSORIUM_WHISPER__ENABLED"] = "false"
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, video.name],
        cwd=video.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), out.stderr
    return float(report["peak_rss_mb"])


@pytest.mark.slow
def test_thirty_minute_video_keeps_memory_flat(tmp_path: Path) -> None:
    short = _video(tmp_path / "one" / "short.mp4", 1)
    long = _video(tmp_path / "thirty" / "long.mp4", 30)
    short_rss = _peak_rss(short, tmp_path / "data-short")
    long_rss = _peak_rss(long, tmp_path / "data-long")
    print(
        f"peak RSS: 1-minute video {short_rss:.0f} MB, 30-minute video {long_rss:.0f} MB, ratio {long_rss / short_rss:.2f}"
    )
    assert long_rss <= 1.5 * short_rss
