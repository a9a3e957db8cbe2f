"""Audio and video preparers: scenes, spectrogram windows and transcripts, embedded as they stream."""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from core.settings import Settings
from index.duplicates.phash import image_hashes
from index.ingest.discover import Candidate
from index.ingest.images import encoder_ready, thumbnail_jpeg
from index.ingest.prepared import PrepareContext, PreparedAsset, PreparedSegment
from index.media.audio import iter_audio_chunks, spectrogram_windows
from index.media.probe import MediaInfo, probe
from index.media.video import iter_scenes

SAMPLE_RATE = 16_000
# Audio is decoded, windowed and transcribed a chunk (whisper.chunk_s) at a time so memory stays flat.
_transcribe_lock = threading.Lock()


class _Embedder:
    """Embeds image segments in encoder-sized batches while decoding goes on, keeping only the vectors."""

    def __init__(self, ctx: PrepareContext) -> None:
        self.ctx = ctx
        self.pending: list[tuple[PreparedSegment, Any]] = []
        self.done: list[PreparedSegment] = []

    def add(self, segment: PreparedSegment, image: Any) -> None:
        self.pending.append((segment, self.ctx.encoder.preprocess(encoder_ready(image))))
        if len(self.pending) >= self.ctx.settings.encoder.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        vectors = self.ctx.encoder.encode_preprocessed([pixels for _, pixels in self.pending])
        for (segment, _), vector in zip(self.pending, vectors, strict=True):
            segment.vector = vector
            self.done.append(segment)
        self.pending = []


def _windows(chunks: Iterator[np.ndarray], settings: Settings) -> Iterator[tuple[float, float, Any, np.ndarray]]:
    """Yield (t_start, t_end, spectrogram image, the chunk it came from or empty) across chunk boundaries."""
    media = settings.media
    window = round(media.audio_window_s * SAMPLE_RATE)
    hop = max(1, round(media.audio_hop_s * SAMPLE_RATE))
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # sample index of buffer[0]
    emitted = False
    for chunk in chunks:
        yield 0.0, 0.0, None, chunk  # lets the caller transcribe each chunk exactly once
        buffer = np.concatenate([buffer, chunk])
        if buffer.size < window:
            continue
        full = 1 + (buffer.size - window) // hop
        for spec in spectrogram_windows(buffer[: (full - 1) * hop + window], media, SAMPLE_RATE):
            yield offset / SAMPLE_RATE + spec.t_start, offset / SAMPLE_RATE + spec.t_end, spec.image, np.zeros(0)
        emitted = True
        buffer, offset = buffer[full * hop :], offset + full * hop
    if buffer.size and (not emitted or buffer.size > window - hop):
        for spec in spectrogram_windows(buffer, media, SAMPLE_RATE):
            yield offset / SAMPLE_RATE + spec.t_start, offset / SAMPLE_RATE + spec.t_end, spec.image, np.zeros(0)


def _audio_segments(prepared: PreparedAsset, ctx: PrepareContext, embedder: _Embedder) -> list[PreparedSegment]:
    """Spectrogram segments (embedded as they come) and, if enabled, transcript segments."""
    candidate = prepared.candidate
    whisper = ctx.settings.whisper
    transcription = None
    if whisper.enabled:
        from index.transcribe import get_transcriber
        from index.transcript_chunks import ChunkedTranscription

        transcription = ChunkedTranscription(
            get_transcriber(whisper), SAMPLE_RATE, whisper.overlap_s, _transcribe_lock
        )
    spoken = []
    chunks = iter_audio_chunks(candidate.path, whisper.chunk_s, ctx.settings.media, SAMPLE_RATE)
    for t_start, t_end, image, chunk in _windows(chunks, ctx.settings):
        if image is not None:
            if prepared.thumbnail_key is None:  # an audio file's poster is its first spectrogram
                thumbs = ctx.settings.thumbnails
                jpeg = thumbnail_jpeg(image, thumbs.size, thumbs.quality)
                prepared.thumbnail_key = ctx.blobs.put_thumbnail(f"{prepared.sha256}.jpg", jpeg)
            embedder.add(PreparedSegment(kind="spectrogram", t_start=round(t_start, 3), t_end=round(t_end, 3)), image)
        elif transcription is not None:
            spoken.extend(transcription.feed(chunk))
    if transcription is not None:
        spoken.extend(transcription.finish())
    return [
        PreparedSegment(kind="transcript", t_start=s.t_start, t_end=s.t_end, text=s.text.strip())
        for s in spoken
        if s.text.strip()
    ]


def _asset(candidate: Candidate, sha256: str, size: int, info: MediaInfo, kind: str) -> PreparedAsset:
    candidate.kind = kind
    return PreparedAsset(
        candidate=candidate,
        sha256=sha256,
        size=size,
        mime=mimetypes.guess_type(candidate.name)[0],
        width=info.width,
        height=info.height,
        duration=round(info.duration_s, 3),
        media_seconds=info.duration_s,
        meta={"container": info.container, "video_codec": info.video_codec, "audio_codec": info.audio_codec},
    )


def prepare_audio(candidate: Candidate, sha256: str, size: int, ctx: PrepareContext) -> PreparedAsset:
    """Decode an audio file into spectrogram windows and transcript segments."""
    info = probe(candidate.path, ctx.settings.media)
    if not info.has_audio:
        raise ValueError(f"no audio stream in {candidate.name}")
    if info.has_video:
        return prepare_video(candidate, sha256, size, ctx)
    prepared = _asset(candidate, sha256, size, info, "audio")
    embedder = _Embedder(ctx)
    transcripts = _audio_segments(prepared, ctx, embedder)
    embedder.flush()
    prepared.segments = embedder.done + transcripts
    if not prepared.segments:
        raise ValueError(f"zero-length media: nothing to index in {candidate.name}")
    return prepared


def prepare_video(candidate: Candidate, sha256: str, size: int, ctx: PrepareContext) -> PreparedAsset:
    """Decode a video into one frame segment per scene, plus its audio track's segments."""
    info = probe(candidate.path, ctx.settings.media)
    if not info.has_video:
        return prepare_audio(candidate, sha256, size, ctx)  # an .mp4 holding only sound is an audio asset
    prepared = _asset(candidate, sha256, size, info, "video")
    thumbs = ctx.settings.thumbnails
    embedder = _Embedder(ctx)
    for scene in iter_scenes(candidate.path, ctx.settings.media):
        jpeg = thumbnail_jpeg(scene.frame, thumbs.size, thumbs.quality)
        key = ctx.blobs.put_thumbnail(f"{sha256}-{round(scene.frame_time * 1000)}.jpg", jpeg)
        prepared.thumbnail_key = prepared.thumbnail_key or key
        segment = PreparedSegment(
            kind="frame",
            t_start=round(scene.t_start, 3),
            t_end=round(scene.t_end, 3),
            thumbnail_key=key,
            meta={"frame_time": round(scene.frame_time, 3)},  # where the OCR pass finds the scene's picture
        )
        embedder.add(segment, scene.frame)
        prepared.hashes.append((segment.t_start, *image_hashes(scene.frame).pair))
    transcripts = _audio_segments(prepared, ctx, embedder) if info.has_audio else []
    embedder.flush()
    prepared.segments = embedder.done + transcripts
    return prepared
