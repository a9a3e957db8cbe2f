"""Helpers for audio/video generation tests: tiny pipelines built once, one torch thread, decoding outputs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np

from generators.tiny_media import TINY_MEDIA_BUILDERS, build_tiny, tiny_folder_name


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run tiny models on one intra-op thread, then restore the setting.

    Tiny models are all per-operator overhead: on this shared 2-core machine a second thread mostly waits for a core
    (the tiny video tests measured 24 s with two threads against 4 s with one under load).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_tiny_media(models: Path) -> Path:
    """Build every tiny audio/video pipeline under ``models`` (named as a data dir's models/ folder); return it."""
    for pipeline_class in TINY_MEDIA_BUILDERS:
        build_tiny(pipeline_class, models / tiny_folder_name(pipeline_class))
    return models


def link_tiny_media(models: Path, data_dir: Path) -> None:
    """Make ``data_dir`` use the tiny pipelines already built under ``models`` (building takes seconds)."""
    for pipeline_class in TINY_MEDIA_BUILDERS:
        target = data_dir / "models" / tiny_folder_name(pipeline_class)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(models / tiny_folder_name(pipeline_class), target_is_directory=True)


def decode_audio(data: bytes) -> tuple[int, int, int]:
    """Return (sample rate, channels, samples) of encoded audio, decoded with PyAV."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        samples = sum(int(frame.samples) for frame in container.decode(stream))
        return stream.sample_rate, stream.channels, samples


def decode_video(data: bytes) -> tuple[list[np.ndarray], float, float, str, str]:
    """Return (RGB frames, fps, duration in s, codec, pixel format) of a video, decoded with PyAV."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.duration is not None and stream.time_base is not None and stream.average_rate is not None
        duration = float(stream.duration * stream.time_base)
        return frames, float(stream.average_rate), duration, stream.codec_context.name, str(stream.format.name)
