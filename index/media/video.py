"""Cut a video into scenes while decoding it once: a small frame stream feeds the cut detector, and each
scene keeps one full-size frame for the encoder (and OCR)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.settings import MediaSettings
from index.media.errors import MediaError
from index.media.probe import describe, open_container
from index.media.scenes import CutDetector

if TYPE_CHECKING:
    from av.video.frame import VideoFrame
    from PIL import Image

# The cut detector sees frames this many pixels high (width keeps the aspect ratio, rounded to even).
_DETECT_H = 144
# Full-size frames kept as candidates for a scene's picture, per second of video.
_CANDIDATES_PER_S = 2.0
# A scene's picture is taken this far into it (or at its middle if shorter): past any transition's tail.
_PICTURE_AT_S = 2.0
# Frame times are rounded by containers; a frame this close to a sample time counts as on it.
_EPS = 1e-3


@dataclass(frozen=True)
class Scene:
    """A span [t_start, t_end) of a video in seconds, and one RGB frame (shown at frame_time) that represents it."""

    t_start: float
    t_end: float
    frame: Image.Image
    frame_time: float


class _Candidates:
    """Full-size frames at a few per second, kept only while some scene may still pick one."""

    def __init__(self) -> None:
        self.frames: deque[tuple[float, VideoFrame]] = deque()
        self.next_at = 0.0

    def offer(self, t: float, frame: VideoFrame) -> None:
        if t + _EPS >= self.next_at:
            self.frames.append((t, frame))
            self.next_at = (math.floor((t + _EPS) * _CANDIDATES_PER_S) + 1) / _CANDIDATES_PER_S

    def forget(self, keep_from: float, keep_until: float, recent_from: float) -> None:
        """Drop frames outside [keep_from, keep_until] that are also older than ``recent_from``."""
        self.frames = deque(
            (t, f) for t, f in self.frames if t >= recent_from or keep_from - _EPS <= t <= keep_until + _EPS
        )

    def scene(self, t_start: float, t_end: float) -> Scene:
        """Return the scene [t_start, t_end) with the kept frame nearest its picture time."""
        target = t_start + min((t_end - t_start) / 2, _PICTURE_AT_S)
        inside = [(t, f) for t, f in self.frames if t_start - _EPS <= t < t_end] or list(self.frames)
        t, frame = min(inside, key=lambda item: abs(item[0] - target))
        return Scene(t_start=t_start, t_end=t_end, frame=_rgb_image(frame), frame_time=t)


def iter_scenes(path: str | Path, settings: MediaSettings) -> Iterator[Scene]:
    """Yield the scenes of a video in order; each ends where the next starts, the last at the video's end.

    Frames are sampled at ``settings.scene_fps``, scaled down for the cut detector straight from YUV, and
    only a few full-size frames a second are kept until their scene is known, so memory stays flat.
    """
    path = Path(path)
    with open_container(path) as container:
        info = describe(container, path, settings.max_duration_s)
        if info.video_stream is None:
            raise MediaError(f"no video stream in {path.name}")
        stream = next(s for s in container.streams.video if s.index == info.video_stream)
        # No frame threads (thread_type "AUTO"): on 2 cores they decoded h264 0.5-0.8x as fast as the default,
        # and ingest already keeps the cores busy by decoding several files at once.
        detector = CutDetector(settings)
        candidates = _Candidates()
        interval = 1.0 / settings.scene_fps
        frame_length = 1.0 / info.fps if info.fps else 0.0
        next_sample = 0.0
        end = 0.0
        start = 0.0  # where the open scene starts
        seen = False
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            t = max(0.0, frame.time - info.start_time_s)
            end = max(end, t + frame_length)
            if t + _EPS < next_sample:
                continue
            next_sample = (math.floor((t + _EPS) / interval) + 1) * interval
            seen = True
            candidates.offer(t, frame)
            for cut in detector.push(t, _small_bgr(frame)):
                yield candidates.scene(start, cut)
                start = cut
            candidates.forget(start, start + _PICTURE_AT_S, t - detector.lag_s - _PICTURE_AT_S)
        if not seen:
            raise MediaError(f"truncated or corrupt: no decodable video frame in {path.name}")
        for cut in detector.finish():
            if cut < end:
                yield candidates.scene(start, cut)
                start = cut
        yield candidates.scene(start, max(end, start))


def _small_bgr(frame: VideoFrame) -> np.ndarray:
    """Return the frame scaled to _DETECT_H pixels high as a BGR uint8 array, converted by swscale from YUV."""
    width = max(2, round(frame.width * _DETECT_H / max(1, frame.height) / 2) * 2)
    small: np.ndarray = frame.reformat(width=width, height=_DETECT_H, format="bgr24", interpolation="AREA").to_ndarray()
    return small


def _rgb_image(frame: VideoFrame) -> Image.Image:
    """Return a decoded frame converted to a full-size RGB image."""
    from PIL import Image

    return Image.fromarray(frame.to_ndarray(format="rgb24"))


def frames_at(path: str | Path, times: list[float], settings: MediaSettings) -> Iterator[tuple[float, Image.Image]]:
    """Yield (time, RGB frame) for the frame shown at each of ``times`` (seconds from the start), in time order.

    Seeks to the keyframe before each time and decodes forward, so a few pictures of a long video cost little.
    """
    path = Path(path)
    with open_container(path) as container:
        info = describe(container, path, settings.max_duration_s)
        if info.video_stream is None:
            raise MediaError(f"no video stream in {path.name}")
        stream = next(s for s in container.streams.video if s.index == info.video_stream)
        base = stream.time_base
        for wanted in sorted(times):
            if base is not None:
                container.seek(int((wanted + info.start_time_s) / base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time - info.start_time_s + _EPS >= wanted:
                    yield wanted, _rgb_image(frame)
                    break
