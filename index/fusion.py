"""Reciprocal rank fusion of ranked result lists (visual vectors, text-derived vectors, full-text matches).

Lists are fused by rank, never by score: a text query's cosine with OCR or transcript text runs far higher
than its cosine with a picture, so mixing the two scores would let any line of text outrank every photo.
Only the visual (or audio) list carries ``score``; the fused order is reported as ``fused_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

RRF_K = 60


class Ranked(Protocol):
    """What fusion needs of a result: its asset, its scores, and the segment that matched."""

    asset_id: str
    score: float | None
    fused_score: float | None
    segment: Any
    thumbnail_key: str | None


R = TypeVar("R", bound=Ranked)


def rank_scores(results: list[R]) -> list[R]:
    """Set ``fused_score`` of a single list from its ranks and return it."""
    for rank, result in enumerate(results, 1):
        result.fused_score = 1.0 / (RRF_K + rank)
    return results


def fuse(visual: list[R], *derived: list[R], exact: frozenset[str] = frozenset()) -> list[R]:
    """Return the assets of every list ordered by the sum of 1 / (k + rank) over the lists they appear in.

    Assets in ``exact`` (their text holds the whole query phrase) come first, in fused order: rank fusion
    alone lets an asset that is merely near in every list outrank the one that says exactly what was asked.
    ``visual`` results keep their ``score``; an asset found only in ``derived`` lists has ``score`` None. The
    segment shown is the last list's match (the words that matched say more than the nearest picture).
    """
    fused: dict[str, R] = {}
    for results in (visual, *derived):
        for rank, result in enumerate(results, 1):
            contribution = 1.0 / (RRF_K + rank)
            known = fused.get(result.asset_id)
            if known is None:
                result.fused_score = contribution
                fused[result.asset_id] = result
                continue
            known.fused_score = (known.fused_score or 0.0) + contribution
            if result.segment.text:
                known.segment, known.thumbnail_key = result.segment, result.thumbnail_key
    return sorted(fused.values(), key=lambda r: (r.asset_id not in exact, -(r.fused_score or 0.0), r.asset_id))


def only_visual_matches(derived: Sequence[R], visual: Sequence[R]) -> list[R]:
    """Return the ``derived`` results whose asset also has a visual match (what ``min_score`` allows)."""
    allowed = {r.asset_id for r in visual}
    return [r for r in derived if r.asset_id in allowed]
