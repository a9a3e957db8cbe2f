"""Generated videos with known cuts: flat colours, one-palette textures, photo-like scenes, fades, pans.

Each maker returns the cut times (hard cuts, and fade/dissolve midpoints) it put in the video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Size = tuple[int, int]
FrameSource = Callable[[int], np.ndarray]  # frame number within a scene -> HxWx3 uint8 RGB


@dataclass(frozen=True)
class Truth:
    """The cuts of a generated video: hard cut times and gradual transition midpoints, in seconds."""

    hard: tuple[float, ...] = ()
    gradual: tuple[float, ...] = ()
    duration: float = 0.0


def write_video(
    path: Path, frames: Iterator[np.ndarray], size: Size, fps: int, audio: np.ndarray | None = None
) -> Path:
    """Encode RGB frames as h264 (ultrafast), with float32 mono 16 kHz ``audio`` as AAC if given; return the path."""
    from tests.media_factory import _encode_audio

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono") if audio is not None else None
        for n, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None and audio is not None:
            _encode_audio(container, sound, audio, 16000)
    return path


def _smooth_noise(rng: np.random.Generator, size: Size, cell: int) -> np.ndarray:
    """Return HxW noise in [0, 1] with features about ``cell`` pixels across (bilinear upsampled)."""
    width, height = size
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.random((gh, gw))
    ys = np.linspace(0, gh - 1.001, height)
    xs = np.linspace(0, gw - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    result: np.ndarray = top * (1 - fy) + bottom * fy
    return result


def texture(seed: int, size: Size, palette: np.ndarray) -> np.ndarray:
    """Return a busy texture: fine noise quantised to ``palette`` (Kx3), so textures share one colour histogram."""
    rng = np.random.default_rng(seed)
    noise = _smooth_noise(rng, size, int(rng.integers(3, 7)))
    levels = np.quantile(noise, np.linspace(0, 1, len(palette) + 1)[1:-1])
    image: np.ndarray = palette[np.digitize(noise, levels)].astype(np.uint8)
    return image


def photo(seed: int, size: Size) -> np.ndarray:
    """Return a photo-like picture: a lit gradient, soft blobs of colour, fine grain."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3).astype(np.float32)
    tilt = rng.uniform(-0.25, 0.25, (2, 3)).astype(np.float32)
    image = base + xs[..., None] * tilt[0] + ys[..., None] * tilt[1]
    for _ in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.35) * width
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - weight) + rng.uniform(0, 255, 3).astype(np.float32) * weight
    image += 40 * (_smooth_noise(rng, size, 24)[..., None] - 0.5)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    result: np.ndarray = np.clip(image, 0, 255).astype(np.uint8)
    return result


def _still(picture: np.ndarray, seed: int) -> FrameSource:
    """A scene of a still picture with a little life: a square drifting across it and sensor grain."""
    rng = np.random.default_rng(seed)
    height, width = picture.shape[:2]
    shade = rng.integers(0, 256, 3, dtype=np.uint8)

    def frame(n: int) -> np.ndarray:
        out = picture.copy()
        x = (n * 3) % max(1, width - 30)
        out[height // 3 : height // 3 + 30, x : x + 30] = shade
        return out

    return frame


def _pan(canvas: np.ndarray, size: Size, speed: tuple[float, float], zoom: float) -> FrameSource:
    """A camera moving over ``canvas``: ``speed`` pixels per frame, ``zoom`` scale change per frame."""
    import cv2

    width, height = size

    def frame(n: int) -> np.ndarray:
        scale = max(0.5, 1.0 - zoom * n)
        w, h = round(width * scale), round(height * scale)
        x = _bounce(n * speed[0], canvas.shape[1] - w)
        y = _bounce(n * speed[1], canvas.shape[0] - h)
        crop = canvas[y : y + h, x : x + w]
        out: np.ndarray = crop if (w, h) == size else cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        return out

    return frame


def _bounce(position: float, room: int) -> int:
    """Return ``position`` folded into [0, room] back and forth: the camera turns at the canvas edge, never jumps."""
    if room <= 0:
        return 0
    folded = position % (2 * room)
    return round(folded if folded <= room else 2 * room - folded)


def _frames(scenes: list[FrameSource], lengths: list[int], joins: list[tuple[str, int]]) -> Iterator[np.ndarray]:
    """Play the scenes in turn; ``joins[i]`` joins scene i and i+1: ("cut"|"dissolve"|"black", frames), centred on
    the boundary between them."""
    bounds = [0, *np.cumsum(lengths).tolist()]
    for g in range(bounds[-1]):
        i = next(k for k in range(len(lengths)) if g < bounds[k + 1])
        blend = None
        for left in (i - 1, i):  # the join before this scene, then the one after it
            if 0 <= left < len(joins) and joins[left][0] != "cut":
                kind, span = joins[left]
                edge = bounds[left + 1]
                if edge - span / 2 <= g < edge + span / 2:
                    blend = (left, kind, (g - (edge - span / 2) + 0.5) / span)
        if blend is None:
            yield scenes[i](g - bounds[i])
            continue
        left, kind, mix = blend
        a = scenes[left](g - bounds[left]).astype(np.float32)
        b = scenes[left + 1](g - bounds[left + 1]).astype(np.float32)
        if kind == "dissolve":
            yield ((1 - mix) * a + mix * b).astype(np.uint8)
        else:
            yield ((a if mix < 0.5 else b) * abs(1 - 2 * mix)).astype(np.uint8)


def make_scenes_video(
    path: Path,
    pictures: list[np.ndarray],
    scene_s: list[float],
    joins: list[tuple[str, float]],
    fps: int = 25,
    audio: np.ndarray | None = None,
) -> Truth:
    """Write still scenes (with a little motion) joined by cuts, dissolves or fades through black; return the truth."""
    height, width = pictures[0].shape[:2]
    sources = [_still(p, i) for i, p in enumerate(pictures)]
    lengths = [round(s * fps) for s in scene_s]
    fades = [(kind, round(seconds * fps)) for kind, seconds in joins]
    write_video(path, _frames(sources, lengths, fades), (width, height), fps, audio)
    bounds = np.cumsum(lengths)[:-1] / fps
    hard = tuple(float(t) for t, (kind, _) in zip(bounds, joins, strict=True) if kind == "cut")
    gradual = tuple(float(t) for t, (kind, _) in zip(bounds, joins, strict=True) if kind != "cut")
    return Truth(hard, gradual, float(sum(lengths) / fps))


def make_pan_video(path: Path, canvas: np.ndarray, size: Size, seconds: float, speed: tuple[float, float],
                   zoom: float = 0.0, fps: int = 25) -> Truth:
    """Write one continuous camera move over ``canvas`` (no cut) and return its (empty) truth."""
    source = _pan(canvas, size, speed, zoom)
    write_video(path, (source(n) for n in range(round(seconds * fps))), size, fps)
    return Truth(duration=seconds)
