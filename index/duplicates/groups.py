"""Groups built around their best member: every member is near the best copy itself, so groups never chain."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from index.duplicates.near import as_codes, key_bits_for, near_pairs


@dataclass
class Group:
    """A best member and the others, each with its distance to the best (Hamming bits or 1 - cosine)."""

    best: int
    members: list[tuple[int, float]] = field(default_factory=list)


def leader_groups(
    neighbours: dict[int, dict[int, float]], rank: Callable[[int], Any], kind: Callable[[int], str]
) -> list[Group]:
    """Return groups from a symmetric neighbour map: the best unassigned item takes its unassigned neighbours.

    ``rank`` orders items best first; only items of the same ``kind`` join one group.
    """
    assigned: set[int] = set()
    groups = []
    for item in sorted(neighbours, key=rank):
        if item in assigned:
            continue
        members = sorted(
            (
                (other, distance)
                for other, distance in neighbours[item].items()
                if other not in assigned and kind(other) == kind(item)
            ),
            key=lambda pair: rank(pair[0]),
        )
        if not members:
            continue
        assigned.add(item)
        assigned.update(other for other, _ in members)
        groups.append(Group(item, members))
    return groups


def _link(neighbours: dict[int, dict[int, float]], a: int, b: int, distance: float) -> None:
    if a == b:
        return
    for x, y in ((a, b), (b, a)):
        known = neighbours.setdefault(x, {})
        if distance < known.get(y, distance + 1):
            known[y] = distance


def hash_neighbours(
    owners: np.ndarray, phash: np.ndarray, dhash: np.ndarray, max_distance: int, tables: int
) -> dict[int, dict[int, float]]:
    """Return, for each owner (asset index) near another, its near owners and their smallest code distance.

    One owner may hold several codes (a video's scene frames); identical codes are searched once.
    """
    codes = as_codes(phash, dhash)
    if len(codes) == 0:
        return {}
    order = np.lexsort((codes[:, 1], codes[:, 0]))
    ordered = codes[order]
    starts = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    code_of_row = np.empty(len(codes), dtype=np.int64)
    code_of_row[order] = np.cumsum(starts) - 1
    unique = ordered[starts]
    bounds = np.append(np.flatnonzero(starts), len(order))  # rows of unique code c: order[bounds[c]:bounds[c+1]]
    pairs = near_pairs(unique, max_distance, tables, key_bits_for(len(unique)))
    neighbours: dict[int, dict[int, float]] = {}

    def owners_of(code: int) -> Iterable[int]:
        return owners[order[bounds[code] : bounds[code + 1]]].tolist()

    for code in np.flatnonzero(np.diff(bounds) > 1).tolist():  # several rows share an identical code
        shared = list(dict.fromkeys(owners_of(code)))
        for i, a in enumerate(shared):
            for b in shared[i + 1 :]:
                _link(neighbours, a, b, 0)
    for left, right, distance in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.distance.tolist(), strict=True):
        for a in owners_of(left):
            for b in owners_of(right):
                _link(neighbours, a, b, distance)
    return neighbours
