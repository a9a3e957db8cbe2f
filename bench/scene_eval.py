"""Scene-cut evaluation: 40 generated videos with known cuts; prints one JSON object.

Covers flat colours, busy textures sharing one palette, photo-like scenes, dissolves and fades through black,
and pans/zooms without any cut. A hard cut counts as found within 0.5 s, a gradual one at its midpoint
within 1 s; every other reported cut is a false one.

Run: PYTHONPATH=. python bench/scene_eval.py [--videos-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import MediaSettings
from index.media.video import iter_scenes
from tests.scene_videos import Truth, make_pan_video, make_scenes_video, photo, texture

SIZE = (640, 360)
HARD_TOLERANCE_S = 0.5
GRADUAL_TOLERANCE_S = 1.0


def _scene_lengths(rng: np.random.Generator, count: int) -> list[float]:
    return [float(x) for x in np.round(rng.uniform(2.5, 5.0, count), 1)]


def build_videos(folder: Path) -> list[tuple[str, Path, Truth]]:
    """Write the 40 evaluation videos into ``folder``; return (family, path, truth) for each."""
    videos: list[tuple[str, Path, Truth]] = []
    for i in range(8):
        rng = np.random.default_rng(100 + i)
        count = int(rng.integers(4, 7))
        colours = [rng.integers(0, 256, 3)]
        while len(colours) < count:  # consecutive colours a viewer tells apart at a glance
            colour = rng.integers(0, 256, 3)
            if int(np.abs(colour - colours[-1]).sum()) >= 90:
                colours.append(colour)
        pictures = [np.broadcast_to(c.astype(np.uint8), (SIZE[1], SIZE[0], 3)).copy() for c in colours]
        path = folder / f"flat-{i}.mp4"
        videos.append(("flat", path, make_scenes_video(path, pictures, _scene_lengths(rng, count), [("cut", 0)] * (count - 1))))
    for i in range(8):
        rng = np.random.default_rng(200 + i)
        count = int(rng.integers(3, 6))
        palette = rng.integers(0, 256, (4, 3))
        pictures = [texture(1000 * i + k, SIZE, palette) for k in range(count)]
        path = folder / f"texture-{i}.mp4"
        videos.append(("texture", path, make_scenes_video(path, pictures, _scene_lengths(rng, count), [("cut", 0)] * (count - 1))))
    for i in range(8):
        rng = np.random.default_rng(300 + i)
        count = int(rng.integers(3, 6))
        pictures = [photo(3000 + 10 * i + k, SIZE) for k in range(count)]
        path = folder / f"photo-{i}.mp4"
        videos.append(("photo", path, make_scenes_video(path, pictures, _scene_lengths(rng, count), [("cut", 0)] * (count - 1))))
    for i in range(8):
        rng = np.random.default_rng(400 + i)
        count = int(rng.integers(3, 6))
        if i % 2:
            palette = rng.integers(0, 256, (4, 3))
            pictures = [texture(4000 + 10 * i + k, SIZE, palette) for k in range(count)]
        else:
            pictures = [photo(4000 + 10 * i + k, SIZE) for k in range(count)]
        joins = [(str(rng.choice(["dissolve", "black", "dissolve", "cut"])), float(rng.choice([0.5, 1.0, 1.5, 2.0])))
                 for _ in range(count - 1)]
        lengths = [max(s, 3.0) for s in _scene_lengths(rng, count)]
        path = folder / f"fade-{i}.mp4"
        videos.append(("fade", path, make_scenes_video(path, pictures, lengths, joins)))
    for i in range(8):
        rng = np.random.default_rng(500 + i)
        canvas_size = (SIZE[0] * 2, SIZE[1] * 2)
        canvas = photo(5000 + i, canvas_size) if i % 2 == 0 else texture(5000 + i, canvas_size, rng.integers(0, 256, (4, 3)))
        speed = (float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.0, 1.0)))
        zoom = 0.0015 if i in (3, 6) else 0.0
        path = folder / f"pan-{i}.mp4"
        videos.append(("pan", path, make_pan_video(path, canvas, SIZE, 20.0, speed, zoom)))
    return videos


def match(found: list[float], truth: Truth) -> tuple[int, int, int]:
    """Return (true positives, false positives, false negatives): each truth cut takes the nearest unused cut."""
    unused = sorted(found)
    hits = 0
    wanted = [(t, HARD_TOLERANCE_S) for t in truth.hard] + [(t, GRADUAL_TOLERANCE_S) for t in truth.gradual]
    for t, tolerance in sorted(wanted, key=lambda w: w[1]):
        near = [c for c in unused if abs(c - t) <= tolerance]
        if near:
            unused.remove(min(near, key=lambda c: abs(c - t)))
            hits += 1
    return hits, len(unused), len(wanted) - hits


def evaluate(videos: list[tuple[str, Path, Truth]], settings: MediaSettings) -> dict[str, Any]:
    """Run the detector over every video and return the scores overall and per family."""
    families: dict[str, list[int]] = {}
    pan_false = 0
    pan_seconds = 0.0
    errors: list[dict[str, Any]] = []
    started = time.perf_counter()
    video_seconds = 0.0
    for family, path, truth in videos:
        cuts = [s.t_start for s in iter_scenes(path, settings)][1:]
        tp, fp, fn = match(cuts, truth)
        counts = families.setdefault(family, [0, 0, 0])
        for k, value in enumerate((tp, fp, fn)):
            counts[k] += value
        video_seconds += truth.duration
        if family == "pan":
            pan_false += fp
            pan_seconds += truth.duration
        if fp or fn:
            errors.append({"video": path.name, "found": [round(c, 2) for c in cuts],
                           "hard": truth.hard, "gradual": [round(g, 2) for g in truth.gradual]})
    elapsed = time.perf_counter() - started
    tp, fp, fn = (sum(c[k] for c in families.values()) for k in range(3))
    return {
        "f1": round(_f1(tp, fp, fn), 4),
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "per_family": {name: {"tp": c[0], "fp": c[1], "fn": c[2], "f1": round(_f1(*c), 4)} for name, c in families.items()},
        "pan_false_cuts_per_minute": round(pan_false / max(pan_seconds, 1e-9) * 60, 3),
        "video_seconds": round(video_seconds, 1),
        "detect_x_realtime": round(video_seconds / elapsed, 1),
        "errors": errors,
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(1, 2 * tp + fp + fn)


def main() -> None:
    """Build the videos (or reuse a folder of them), evaluate, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos-dir", type=Path, help="keep the generated videos here (default: a temp dir)")
    parser.add_argument("--detector", choices=["adaptive", "content"], default="adaptive")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.videos_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        build_started = time.perf_counter()
        videos = build_videos(folder)
        report = {
            "videos": len(videos),
            "detector": args.detector,
            "build_s": round(time.perf_counter() - build_started, 1),
            **evaluate(videos, MediaSettings(scene_detector=args.detector)),
            "targets": {"f1": 0.95, "pan_false_cuts_per_minute": 1.0},
            "machine": platform.processor() or platform.machine(),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
