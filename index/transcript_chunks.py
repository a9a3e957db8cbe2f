"""Transcribe long audio in chunks without seams: each chunk is transcribed with the tail of the one before,
and every word belongs to exactly one chunk, the one in whose half of the overlap its middle falls.

A word spoken across a chunk boundary is whole in the later window (which starts ``overlap_s`` earlier),
so it is transcribed once, whole; times come out absolute and in order.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext

import numpy as np

from index.transcribe import Transcriber, TranscriptSegment, Word

# A sentence cut by the ownership boundary continues in the next window if it resumes within this gap.
_JOIN_GAP_S = 0.5


class ChunkedTranscription:
    """Feed consecutive chunks of float32 mono audio; get back transcript segments in absolute time."""

    def __init__(
        self,
        transcriber: Transcriber,
        sample_rate: int,
        overlap_s: float,
        lock: threading.Lock | None = None,
    ) -> None:
        self._transcriber = transcriber
        self._rate = sample_rate
        self._overlap = max(0, round(overlap_s * sample_rate))
        self._lock = lock  # one model instance may serve several decoding threads
        self._tail = np.zeros(0, dtype=np.float32)
        self._offset = 0.0  # absolute time of the next chunk's first sample
        self._pending: list[TranscriptSegment] = []  # words past this window's share: the next window owns them
        self._held: TranscriptSegment | None = None  # the last settled part, which the next window may continue
        self._last_end = 0.0

    def feed(self, chunk: np.ndarray) -> list[TranscriptSegment]:
        """Transcribe the next chunk (with the previous one's tail); return the segments now settled."""
        window = np.concatenate([self._tail, np.asarray(chunk, dtype=np.float32).reshape(-1)])
        start = self._offset - self._tail.size / self._rate
        own_from = self._offset - self._tail.size / (2 * self._rate)  # the middle of the overlap
        chunk_end = self._offset + len(chunk) / self._rate
        self._tail = window[-self._overlap :] if self._overlap else np.zeros(0, dtype=np.float32)
        own_until = chunk_end - self._tail.size / (2 * self._rate)  # where the next window's share begins
        with self._lock or nullcontext():
            spoken = self._transcriber.transcribe(window)
        self._offset = chunk_end
        settled = []
        self._pending = []
        for segment in spoken:
            shifted = _shift(segment, start)
            mine = _part(shifted, own_from, own_until)
            later = _part(shifted, own_until, float("inf"))
            if mine is not None:
                settled.append(mine)
            if later is not None:
                self._pending.append(later)
        settled = self._joined(settled)
        self._held = settled.pop() if settled else None
        return [self._monotonic(segment) for segment in settled]

    def finish(self) -> list[TranscriptSegment]:
        """Return what is left: the held segment and the last window's words past its share."""
        settled = self._joined(self._pending)
        self._pending, self._held = [], None
        return [self._monotonic(segment) for segment in settled]

    def _joined(self, settled: list[TranscriptSegment]) -> list[TranscriptSegment]:
        """Put the held segment in front, joined with the first new one when it is the same sentence going on."""
        held = self._held
        if held is None:
            return settled
        if settled and settled[0].t_start - held.t_end <= _JOIN_GAP_S and not held.text.endswith((".", "?", "!")):
            first = settled[0]
            words = held.words + first.words
            return [TranscriptSegment(held.t_start, first.t_end, f"{held.text} {first.text}", words), *settled[1:]]
        return [held, *settled]

    def _monotonic(self, segment: TranscriptSegment) -> TranscriptSegment:
        t_start = max(segment.t_start, self._last_end)
        t_end = max(segment.t_end, t_start)
        self._last_end = t_end
        return TranscriptSegment(round(t_start, 3), round(t_end, 3), segment.text, segment.words)


def _shift(segment: TranscriptSegment, by: float) -> TranscriptSegment:
    words = tuple(Word(w.t_start + by, w.t_end + by, w.text) for w in segment.words)
    return TranscriptSegment(segment.t_start + by, segment.t_end + by, segment.text, words)


def _part(segment: TranscriptSegment, lo: float, hi: float) -> TranscriptSegment | None:
    """Return the part of a segment whose words' middles fall in [lo, hi), or None if no word does."""
    if not segment.words:  # a backend without word times: the segment goes whole by its middle
        middle = (segment.t_start + segment.t_end) / 2
        return segment if lo <= middle < hi else None
    words = tuple(w for w in segment.words if lo <= (w.t_start + w.t_end) / 2 < hi)
    if not words:
        return None
    text = "".join(w.text for w in words).strip()
    return TranscriptSegment(words[0].t_start, max(words[-1].t_end, words[0].t_start), text, words) if text else None
