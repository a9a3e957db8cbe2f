"""Encode generated media with PyAV: audio as WAV, FLAC or MP3; video as H.264 MP4 (yuv420p, index first)."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from av.audio.stream import AudioStream

# format -> (container, codec, mime)
AUDIO_CODECS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "wav": ("wav", "pcm_s16le", "audio/wav"),
        "flac": ("flac", "flac", "audio/flac"),
        "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    }
)
VIDEO_MIME = "video/mp4"
# MP3 frames hold exactly 1152 samples; PCM and FLAC take any size, so one size serves all three.
_AUDIO_FRAME = 1152
_LAYOUTS = {1: "mono", 2: "stereo"}
# Visually lossless for generated clips and small next to the model's own artefacts.
_X264_OPTIONS = {"crf": "18", "preset": "medium"}


def _as_float_planar(waveform: np.ndarray) -> np.ndarray:
    """Return (channels, samples) float32 in [-1, 1] from a mono vector or a (channels, samples) array."""
    audio = np.asarray(waveform, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or audio.shape[0] not in _LAYOUTS:
        raise ValueError(f"expected mono or stereo audio shaped (channels, samples), got {audio.shape}")
    return np.ascontiguousarray(np.clip(np.nan_to_num(audio), -1.0, 1.0))


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Return (channels, samples) float32 audio resampled from ``rate`` to ``target_rate`` Hz (FFmpeg's swresample)."""
    import av

    audio = _as_float_planar(waveform)
    if rate == target_rate:
        return audio
    layout = _LAYOUTS[audio.shape[0]]
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=target_rate)
    frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout=layout)
    frame.sample_rate = rate
    chunks = [f.to_ndarray() for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((audio.shape[0], 0), dtype=np.float32)


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """Return ``audio`` (channels, samples) cut or zero-padded at the end to exactly ``samples``."""
    if audio.shape[1] >= samples:
        return audio[:, :samples]
    return np.pad(audio, ((0, 0), (0, samples - audio.shape[1])))


def encode_audio(waveform: np.ndarray, sample_rate: int, fmt: str = "wav") -> bytes:
    """Return ``waveform`` (mono or (channels, samples) floats) encoded as ``fmt`` at ``sample_rate`` Hz."""
    import av

    container_format, codec, _ = AUDIO_CODECS[fmt]
    audio = _as_float_planar(waveform)
    layout = _LAYOUTS[audio.shape[0]]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        # The codec name is only known at run time, so PyAV's typing cannot tell this is an audio stream.
        stream = cast("AudioStream", container.add_stream(codec, rate=sample_rate, layout=layout))
        # Converts float samples to what the encoder takes (s16 for PCM and FLAC) in encoder-sized frames.
        resampler = av.AudioResampler(
            format=stream.format.name, layout=layout, rate=sample_rate, frame_size=_AUDIO_FRAME
        )
        frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def to_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """Return (frames, height, width, 3) uint8 RGB from floats in [0, 1] (or uint8), cropped to even sides."""
    video = np.asarray(frames)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected video frames shaped (frames, height, width, 3), got {video.shape}")
    if video.dtype != np.uint8:
        video = (np.clip(np.nan_to_num(video.astype(np.float32)), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    # yuv420p halves chroma both ways, so H.264 needs even sides.
    height, width = video.shape[1] - video.shape[1] % 2, video.shape[2] - video.shape[2] % 2
    if height == 0 or width == 0:
        raise ValueError(f"frames of {video.shape[2]}x{video.shape[1]} are too small to encode")
    return np.ascontiguousarray(video[:, :height, :width])


def encode_mp4(frames: np.ndarray, fps: int) -> bytes:
    """Return H.264 MP4 bytes (yuv420p, moov first for streaming) of ``frames`` played at ``fps``."""
    import av

    video = to_uint8_frames(frames)
    # faststart rewrites the file in a second pass, which needs a real file rather than a buffer.
    fd, name = tempfile.mkstemp(prefix="sensorium-encode-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(name, "w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
            stream.height, stream.width = video.shape[1], video.shape[2]
            stream.pix_fmt = "yuv420p"
            for index, pixels in enumerate(video):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return Path(name).read_bytes()
    finally:
        Path(name).unlink(missing_ok=True)
