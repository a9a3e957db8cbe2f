"""A frame query finds the scene it comes from, even among busy textures that share one palette."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from core.settings import Settings, WhisperSettings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchRequest, search
from tests.scene_videos import make_scenes_video, photo, texture

PALETTE = np.array([(30, 30, 120), (200, 60, 60), (240, 220, 200), (20, 140, 40)])


def test_a_middle_texture_frame_returns_its_scene(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    scenes = [texture(seed, (480, 270), PALETTE) for seed in (21, 22, 23)]
    make_scenes_video(lib / "textures.mp4", scenes, [4.0, 4.0, 4.0], [("cut", 0.0), ("cut", 0.0)])
    make_scenes_video(lib / "other.mp4", [photo(31, (480, 270)), photo(32, (480, 270))], [3.0, 3.0], [("cut", 0.0)])
    settings = settings.model_copy(update={"whisper": WhisperSettings(enabled=False)})
    summary = ingest(discover([lib], None), settings)
    assert (summary.indexed, summary.failed) == (2, 0)
    # The frame shown at 6 s: the middle scene's texture (with the drifting square the generator adds).
    buffer = io.BytesIO()
    Image.fromarray(scenes[1]).save(buffer, format="PNG")
    top = search(SearchRequest(image=buffer.getvalue(), limit=2), settings)[0]
    assert top.name == "textures.mp4" and top.segment.kind == "frame"
    assert top.segment.t_start is not None and top.segment.t_end is not None
    assert top.segment.t_start >= 3.0 and top.segment.t_end <= 9.0
