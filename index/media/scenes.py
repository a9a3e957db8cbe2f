"""Scene cuts from a stream of small frames: PySceneDetect for hard cuts, a blend test for fades and dissolves.

PySceneDetect's content and adaptive detectors compare consecutive frames, so they see a hard cut as a spike
but a one-second dissolve as ten small changes. Gradual transitions are found by a second test over a window
of +-1 s: every frame in it must be a mix of the window's first and last frames (a dissolve, or a fade
through black), while the two ends differ clearly. A pan or a zoom shifts content instead of blending
it, so it fails the test.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from core.settings import MediaSettings

# Gradual transitions are judged on a 128x72 colour thumbnail: fine enough to tell two textures of one palette apart.
_BLEND_W, _BLEND_H = 128, 72
# Half the blend window in seconds: transitions up to about twice this long are found whole.
_BLEND_HALF_S = 1.0
# The window's ends must differ by this mean absolute difference (0-255 scale) to count as a transition...
_BLEND_MIN_CHANGE = 18.0
# ...and each frame must be within this fraction of that difference from the best mix of the two ends.
_BLEND_MAX_RESIDUAL = 0.22
# Cuts closer than this are one transition (a dissolve also shows a spike where it starts or ends).
_MERGE_S = 1.2
# A hard cut inside a transition is the transition itself if its one step holds this share of the change.
_HARD_SHARE = 0.5
# A lone hard cut is not one if, this long after it, the picture differs from before it by less than
# _FLASH_MAX_CHANGE (mean absolute difference, 0-255); a new slide of text alone differs by more than 10.
_FLASH_S = 0.5
_FLASH_MAX_CHANGE = 4.0
# Scenes shorter than this are merged into the one before: flashes are not scenes.
_MIN_SCENE_S = 0.6


class CutDetector:
    """Feed small BGR frames in time order (``push``); get back the cut times (seconds) once they are certain."""

    def __init__(self, settings: MediaSettings) -> None:
        self.fps = settings.scene_fps
        self._hard = _hard_detector(settings)
        self._index = 0
        self._times: dict[int, float] = {}
        half = max(2, round(_BLEND_HALF_S * self.fps))
        self._window: deque[tuple[float, np.ndarray]] = deque(maxlen=2 * half + 1)
        # (centre, change) of consecutive windows that passed the blend test
        self._run: list[tuple[float, float]] = []
        self._steps: dict[float, float] = {}  # recent frames' change from the frame before
        self._recent: dict[float, np.ndarray] = {}  # recent small frames, to tell a flash from a cut
        self._hard_cuts: list[float] = []
        self._gradual_cuts: list[tuple[float, float]] = []  # (midpoint, total change)
        self._emitted: float = 0.0

    @property
    def lag_s(self) -> float:
        """Return how far behind the newest frame a cut can still be reported."""
        return 2 * _BLEND_HALF_S + _MERGE_S + 1.0

    def push(self, t: float, frame: np.ndarray) -> list[float]:
        """Take the next frame (HxWx3 uint8 BGR) shown at ``t`` seconds; return cuts now certain, in order."""
        from scenedetect import FrameTimecode

        self._times[self._index] = t
        for timecode in self._hard.process_frame(FrameTimecode(self._index, fps=self.fps), frame):
            self._hard_cuts.append(self._times[timecode.frame_num])
        self._index += 1
        for stale in [i for i in self._times if i < self._index - 4 * len(self._window)]:
            del self._times[stale]
        for old in [s for s in self._steps if s < t - 2 * self.lag_s]:
            del self._steps[old]
            self._recent.pop(old, None)
        self._push_blend(t, frame)
        return self._settled(t - self.lag_s)

    def finish(self) -> list[float]:
        """Return the cuts still pending at the end of the video."""
        self._close_run()
        return self._settled(float("inf"))

    def _push_blend(self, t: float, frame: np.ndarray) -> None:
        import cv2

        small = cv2.resize(frame, (_BLEND_W, _BLEND_H), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._window:
            self._steps[t] = float(np.abs(small - self._window[-1][1]).mean())
        self._recent[t] = small
        self._window.append((t, small))
        if len(self._window) < (self._window.maxlen or 0):
            return
        frames = [f for _, f in self._window]
        change = blend_change(frames)
        if change > 0:
            self._run.append((self._window[len(frames) // 2][0], change))
        else:
            self._close_run()

    def _close_run(self) -> None:
        if self._run:
            # Windows pass from where the first one holds the whole transition to where the last one does:
            # the run is symmetric about the transition's midpoint.
            self._gradual_cuts.append(((self._run[0][0] + self._run[-1][0]) / 2, max(c for _, c in self._run)))
            self._run = []

    def _settled(self, before: float) -> list[float]:
        """Merge the cuts found so far that end before ``before`` and return them; keep the rest pending."""
        events = sorted([(t, 0.0) for t in self._hard_cuts] + list(self._gradual_cuts))
        groups: list[list[tuple[float, float]]] = []
        for event in events:
            if groups and event[0] - groups[-1][-1][0] <= _MERGE_S:
                groups[-1].append(event)
            else:
                groups.append([event])
        cuts: list[float] = []
        if self._run:
            before = min(before, self._run[0][0] - _MERGE_S)
        for group in groups:
            if group[-1][0] + _MERGE_S >= before:
                break
            for event in group:
                if event[1] == 0.0:
                    self._hard_cuts.remove(event[0])
                else:
                    self._gradual_cuts.remove(event)
            cut = self._group_time(group)
            if cut is not None and cut - self._emitted >= _MIN_SCENE_S:
                cuts.append(cut)
                self._emitted = cut
        return cuts

    def _is_flash(self, t: float) -> bool:
        """Tell whether a hard cut at ``t`` leaves the picture nearly as it was half a second before it.

        A one-frame flash does, and so does a re-encoded keyframe, whose new grain shifts the hue of grey
        pixels everywhere (PySceneDetect scores that as a cut) while the picture barely changes.
        """
        before = [s for s in self._recent if s < t]
        after = [s for s in self._recent if s >= t + _FLASH_S]
        if not before or not after:
            return False
        change = np.abs(self._recent[max(before)] - self._recent[min(after)]).mean()
        return float(change) < _FLASH_MAX_CHANGE

    def _group_time(self, group: list[tuple[float, float]]) -> float | None:
        """Return the time of a merged group of (time, gradual change or 0 for a hard cut) events, None for a flash.

        A hard cut whose one-frame step carries most of the group's change is a real cut, and precise; a
        smaller spike is the edge of a fade, whose midpoint is the cut.
        """
        hard = [t for t, change in group if change == 0.0]
        gradual = [(t, change) for t, change in group if change > 0.0]
        if not gradual:
            return hard[0] if not self._is_flash(hard[0]) else None
        middle, change = max(gradual, key=lambda g: g[1])
        for t in hard:
            if self._steps.get(t, 0.0) >= _HARD_SHARE * change:
                return t
        return middle


def blend_change(frames: list[np.ndarray]) -> float:
    """Return how much a window of frames changes if it is a transition, else 0.

    A transition has clearly different ends A and B, and every frame between them is a mix a*A + b*B with
    a, b >= 0: a dissolve (a + b = 1) or a fade through black (one of them 0). The change is the mean absolute
    difference of A and B (0-255 scale).
    """
    first, last = frames[0], frames[-1]
    change = float(np.abs(first - last).mean())
    if change < _BLEND_MIN_CHANGE:
        return 0.0
    basis = np.stack([first.ravel(), last.ravel()], axis=1)
    inner = np.stack([f.ravel() for f in frames[1:-1]])
    gram = basis.T @ basis
    projections = inner @ basis
    mix = np.clip(projections @ np.linalg.pinv(gram), 0.0, None)
    # |f - basis @ m|^2 expanded, so the residual of every frame comes from the two small products above.
    residual2 = (inner * inner).sum(axis=1) - 2 * (mix * projections).sum(axis=1) + ((mix @ gram) * mix).sum(axis=1)
    limit = _BLEND_MAX_RESIDUAL * float(np.linalg.norm(first - last))
    return change if float(residual2.max()) <= limit * limit else 0.0


def _hard_detector(settings: MediaSettings) -> Any:
    """Return the configured PySceneDetect detector for hard cuts."""
    from scenedetect import AdaptiveDetector, ContentDetector

    min_len = max(1, round(_MIN_SCENE_S * settings.scene_fps))
    # Edges count as much as hue, saturation and brightness: a new slide is mostly new text, i.e. new edges.
    weights = ContentDetector.Components(delta_hue=1.0, delta_sat=1.0, delta_lum=1.0, delta_edges=1.0)
    if settings.scene_detector == "content":
        threshold = 27.0 if settings.scene_threshold is None else settings.scene_threshold
        return ContentDetector(threshold=threshold, min_scene_len=min_len, weights=weights)
    minimum = 15.0 if settings.scene_threshold is None else settings.scene_threshold
    return AdaptiveDetector(min_scene_len=min_len, min_content_val=minimum, weights=weights)
