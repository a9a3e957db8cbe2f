"""Cut a video into scenes from sampled frames, streaming, with a cheap model-independent frame difference."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.settings import MediaSettings
from index.media.errors import MediaError
from index.media.probe import describe, open_container

if TYPE_CHECKING:
    from av.video.frame import VideoFrame
    from PIL import Image

# Frames are compared on a small thumbnail: enough for colour and layout, cheap to make from YUV directly.
_THUMB_W, _THUMB_H = 64, 36
_HIST_LEVELS = 4
# Grid of the coarse layout comparison; a thumbnail cell is _BLOCK x _BLOCK pixels.
_BLOCK = 4
# Frame times are rounded by containers; a frame this close to a sample time counts as on it.
_EPS = 1e-3


@dataclass(frozen=True)
class Scene:
    """A span [t_start, t_end) of a video in seconds, and one RGB frame (shown at frame_time) that represents it."""

    t_start: float
    t_end: float
    frame: Image.Image
    frame_time: float


def iter_scenes(path: str | Path, settings: MediaSettings) -> Iterator[Scene]:
    """Yield the scenes of a video in order, sampling ``settings.video_fps`` frames per second.

    A new scene starts at a sampled frame whose ``frame_distance`` from the current scene's first frame
    exceeds ``settings.scene_threshold``; each scene ends where the next starts, the last at the video's end.
    Only the sampled frames are converted from YUV, and only the open scene's frame is held.
    """
    path = Path(path)
    with open_container(path) as container:
        info = describe(container, path, settings.max_duration_s)
        if info.video_stream is None:
            raise MediaError(f"no video stream in {path.name}")
        stream = next(s for s in container.streams.video if s.index == info.video_stream)
        # No frame threads (thread_type "AUTO"): on 2 cores they decoded h264 0.5-0.8x as fast as the default,
        # and ingest already keeps the cores busy by decoding several files at once.
        interval = 1.0 / settings.video_fps
        frame_length = 1.0 / info.fps if info.fps else 0.0
        next_sample = 0.0
        end = 0.0
        # The open scene (t_end not yet known) and the signature of its first frame, which later samples meet.
        scene: Scene | None = None
        anchor = np.empty(0, dtype=np.float32)
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            t = max(0.0, frame.time - info.start_time_s)
            end = max(end, t + frame_length)
            if t + _EPS < next_sample:
                continue
            next_sample = (math.floor((t + _EPS) / interval) + 1) * interval
            signature = frame_signature(frame)
            if scene is None:
                scene, anchor = Scene(t_start=0.0, t_end=t, frame=_rgb_image(frame), frame_time=t), signature
            elif frame_distance(anchor, signature) > settings.scene_threshold:
                yield replace(scene, t_end=t)
                scene, anchor = Scene(t_start=t, t_end=t, frame=_rgb_image(frame), frame_time=t), signature
        if scene is None:
            raise MediaError(f"truncated or corrupt: no decodable video frame in {path.name}")
        yield replace(scene, t_end=max(end, scene.frame_time))


def frame_signature(frame: VideoFrame) -> np.ndarray:
    """Return a 64x36 RGB thumbnail of a decoded frame as float32, scaled by swscale straight from YUV."""
    thumb = frame.reformat(width=_THUMB_W, height=_THUMB_H, format="rgb24", interpolation="AREA")
    signature: np.ndarray = thumb.to_ndarray().astype(np.float32)
    return signature


def frame_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Return the difference of two frame signatures in [0, 2]: colour-histogram change plus layout change.

    Half the L1 distance of 64-bin colour histograms (0 = same colours, 1 = disjoint) plus the mean
    absolute difference of 16x9 block averages scaled to [0, 1]; either alone misses some cuts.
    """
    histogram_change = 0.5 * float(np.abs(_histogram(a) - _histogram(b)).sum())
    layout_change = float(np.abs(_blocks(a) - _blocks(b)).mean()) / 255.0
    return histogram_change + layout_change


def _rgb_image(frame: VideoFrame) -> Image.Image:
    """Return a decoded frame converted to a full-size RGB image."""
    from PIL import Image

    return Image.fromarray(frame.to_ndarray(format="rgb24"))


def _histogram(signature: np.ndarray) -> np.ndarray:
    """Return the normalised joint RGB histogram of a signature, with _HIST_LEVELS levels per channel."""
    levels = np.minimum((signature * (_HIST_LEVELS / 256.0)).astype(np.int64), _HIST_LEVELS - 1)
    codes = (levels[..., 0] * _HIST_LEVELS + levels[..., 1]) * _HIST_LEVELS + levels[..., 2]
    counts = np.bincount(codes.ravel(), minlength=_HIST_LEVELS**3).astype(np.float32)
    histogram: np.ndarray = counts / codes.size
    return histogram


def _blocks(signature: np.ndarray) -> np.ndarray:
    """Return the per-channel averages of _BLOCK x _BLOCK cells of a signature."""
    h, w, c = signature.shape
    blocks: np.ndarray = signature.reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK, c).mean(axis=(1, 3))
    return blocks
