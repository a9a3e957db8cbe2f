"""OCR with the real PP-OCR models: a settings page found by its words, a resumable pass, slides in a talk video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import AssetPass, Segment
from core.settings import OcrSettings, Settings, WhisperSettings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.ocr_pass import run_ocr_pass
from index.search import SearchRequest, search
from tests.ocr_images import fonts, render, save, settings_screenshots
from tests.scene_videos import make_scenes_video

pytest.importorskip("rapidocr_onnxruntime", reason="OCR models ship in rapidocr-onnxruntime (Python < 3.13)")

PHRASE = "Enable two-factor authentication"


def _with_ocr(settings: Settings) -> Settings:
    return settings.model_copy(update={"ocr": OcrSettings(), "whisper": WhisperSettings(enabled=False)})


def test_settings_page_is_found_first_by_its_phrase(settings: Settings, tmp_path: Path) -> None:
    settings = _with_ocr(settings)
    save(settings_screenshots(), tmp_path / "lib")  # settings-00 holds the phrase, 20 others share most words
    summary = ingest(discover([tmp_path / "lib"], None), settings)
    assert (summary.indexed, summary.failed, summary.ocr_pictures) == (21, 0, 21)
    assert summary.ocr_lines >= 21 * 5 and summary.ocr_seconds > 0
    for mode in ("text", "hybrid"):
        top = search(SearchRequest(text=PHRASE, mode=mode, limit=3), settings)[0]
        assert top.name == "settings-00.png", mode
        assert top.segment.kind == "ocr" and "two-factor authentication" in (top.segment.text or "").lower()
    hybrid = search(SearchRequest(text=PHRASE, limit=1), settings)[0]
    assert hybrid.score is not None  # the picture's own cosine; the OCR line's cosine never sets it
    with read_session(settings) as session:
        line = session.execute(select(Segment).where(Segment.id == hybrid.segment.id)).scalar_one()
    assert line.meta is not None and len(line.meta["box"]) == 4
    assert settings.ocr.min_confidence <= line.meta["confidence"] <= 1.0


def test_the_ocr_pass_resumes_where_it_stopped(settings: Settings, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    words = ("alpha", "omega")
    pages = [render([f"Quarterly {word} report"], fonts()[0], 28, rng, name=f"page-{i}.png") for i, word in enumerate(words)]
    save(pages, tmp_path / "lib")
    summary = ingest(discover([tmp_path / "lib"], None), settings.model_copy(update={"ocr": OcrSettings(enabled=False)}))
    assert (summary.indexed, summary.ocr_pictures) == (2, 0)
    settings = _with_ocr(settings)
    assert search(SearchRequest(text="omega", mode="text"), settings) == []

    def stop_after_first(asset_id: str, error: str | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ocr_pass(settings, on_asset=stop_after_first)
    with read_session(settings) as session:
        assert len(session.execute(select(AssetPass)).all()) == 1
    resumed = run_ocr_pass(settings)
    assert (resumed.assets, resumed.pictures) == (1, 1)
    assert run_ocr_pass(settings).assets == 0  # nothing left to read
    for i, word in enumerate(words):
        assert [r.name for r in search(SearchRequest(text=f"quarterly {word}", mode="text"), settings)][0] == f"page-{i}.png"


def test_slides_in_a_talk_are_found_at_their_moment(settings: Settings, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    face = fonts()[0]
    first = render(["Harbor logistics", "Quarterly shipping volume"], face, 30, rng, size=(640, 360))
    second = render(["Glacier research", "Melting ice measurements"], face, 30, rng, size=(640, 360))
    pictures = [np.asarray(first.image), np.asarray(first.image), np.asarray(second.image)]
    (tmp_path / "lib").mkdir()
    # The first slide, a fade through black and the same slide again, then a cut to the second slide.
    make_scenes_video(tmp_path / "lib" / "talk.mp4", pictures, [4.0, 4.0, 4.0], [("black", 1.0), ("cut", 0.0)])
    summary = ingest(discover([tmp_path / "lib"], None), _with_ocr(settings))
    assert summary.indexed == 1 and summary.ocr_pictures == 2  # the repeated slide was not read again
    settings = _with_ocr(settings)
    top = search(SearchRequest(text="glacier research", mode="text"), settings)[0]
    assert top.name == "talk.mp4" and top.segment.kind == "ocr"
    assert top.segment.t_start is not None and top.segment.t_start >= 7.5 and top.segment.t_end == pytest.approx(12.0, abs=0.1)
    harbor = search(SearchRequest(text="harbor logistics", mode="text"), settings)[0]
    assert harbor.name == "talk.mp4" and (harbor.segment.t_end or 99.0) <= 8.5
