"""Generate small audio and video files on the fly with PyAV, so tests need no stored media."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Color = tuple[int, int, int]

# Clearly different colours: each scene's histogram barely overlaps the others'.
SCENE_COLORS: tuple[Color, ...] = (
    (220, 40, 40),
    (40, 200, 60),
    (40, 60, 220),
    (240, 220, 40),
    (200, 40, 200),
    (40, 210, 210),
)

# Container options that put the index (moov) first, as streaming-friendly mp4 files do.
FASTSTART = {"movflags": "faststart"}


def scene_pattern(index: int, color: Color, size: tuple[int, int]) -> np.ndarray:
    """Return an HxWx3 uint8 frame: ``color`` with stripes whose orientation and period depend on ``index``."""
    width, height = size
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = color
    period = 16 + 12 * (index % 4)
    ys, xs = np.mgrid[0:height, 0:width]
    coord = (xs, ys, xs + ys, xs - ys)[index % 4]
    stripes = (coord // (period // 2)) % 2 == 0
    # Stripes darken the colour rather than replace it, so the dominant hue stays the scene's own.
    frame[stripes] = (np.asarray(color) * 0.45).astype(np.uint8)
    return frame


def make_scene_video(
    path: str | Path,
    scenes: Sequence[Color],
    scene_s: float = 5.0,
    fps: int = 30,
    size: tuple[int, int] = (640, 360),
    with_audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    preset: str = "ultrafast",
    container_options: dict[str, str] | None = None,
) -> Path:
    """Write an h264 video of ``len(scenes)`` hard cuts, each ``scene_s`` long, and return its path.

    Scene ``i`` shows ``scene_pattern(i, scenes[i])`` with a small moving square, so frames inside a scene
    differ a little (as real footage does) while frames of different scenes differ a lot.
    ``with_audio`` is float32 mono at ``audio_rate`` Hz, muxed as AAC (mp4) alongside the video.
    """
    path = Path(path)
    width, height = size
    frames_per_scene = round(scene_s * fps)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": preset})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio_stream = None
        if with_audio is not None:
            audio_stream = container.add_stream("aac", rate=audio_rate, layout="mono")
        for index, color in enumerate(scenes):
            base = scene_pattern(index, color, size)
            for n in range(frames_per_scene):
                frame = base.copy()
                x = (n * 4) % max(1, width - 40)
                frame[20:60, x : x + 40] = 255
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = index * frames_per_scene + n
                video_frame.time_base = Fraction(1, fps)
                container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
        if audio_stream is not None and with_audio is not None:
            _encode_audio(container, audio_stream, with_audio, audio_rate)
    return path


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int = 16000, codec: str | None = None) -> Path:
    """Encode float32 mono ``samples`` into ``path``; the codec follows the suffix (wav, flac, ogg, mp3, m4a)."""
    path = Path(path)
    codec = (
        codec
        or {
            ".wav": "pcm_s16le",
            ".flac": "flac",
            ".ogg": "libopus",
            ".opus": "libopus",
            ".mp3": "libmp3lame",
            ".m4a": "aac",
        }[path.suffix.lower()]
    )
    # Opus only encodes at 48 kHz; FFmpeg resamples the frames to the encoder's rate.
    rate = 48000 if codec == "libopus" else sample_rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        _encode_audio(container, stream, samples, sample_rate)
    return path


def make_tone_wav(path: str | Path, seconds: float, freq: float = 440.0, sample_rate: int = 16000) -> Path:
    """Write a 16-bit mono wav of a sine at ``freq`` Hz (amplitude 0.5) and return its path."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float64) / sample_rate
    return write_audio(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate)


def make_silence_wav(path: str | Path, seconds: float, sample_rate: int = 16000) -> Path:
    """Write a 16-bit mono wav of digital silence and return its path."""
    return write_audio(path, np.zeros(round(seconds * sample_rate), dtype=np.float32), sample_rate)


def _encode_audio(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: np.ndarray, rate: int
) -> None:
    """Feed mono float32 ``samples`` at ``rate`` Hz to ``stream`` in 1024-sample frames, then flush it."""
    # The encoder's own resampler converts format and rate and re-frames to its frame size.
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[start : start + 1024].reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
