"""Near pairs among many 128-bit perceptual codes (pHash then dHash) without comparing every pair.

Multi-index hashing over random bit samples: each of ``tables`` tables keys every code by ``key_bits`` of
its bits, chosen at random (fixed seed) so that the tables together cover all 128 bits evenly. Codes that
share a key in some table are candidates, and only candidates have their full Hamming distance computed.
Two codes ``d`` bits apart share a table's key with probability about (1 - d/128) ** key_bits, so the
recall at the threshold is set by ``tables``; a pair of unrelated codes (about 64 bits apart) shares one
with probability 2 ** -key_bits, so with ``key_bits`` near log2(N) the work grows about linearly with N.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

CODE_BITS = 128


@dataclass(frozen=True)
class NearPairs:
    """Pairs of rows (``left`` < ``right``) whose codes lie at most the threshold apart, with that distance."""

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray


def distances(codes: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Return the Hamming distances between rows ``left`` and ``right`` of an (N, 2) uint64 code array."""
    first, second = codes[:, 0], codes[:, 1]
    found: np.ndarray = np.bitwise_count(first[left] ^ first[right]).astype(np.int16)
    found += np.bitwise_count(second[left] ^ second[right])
    return found


def as_codes(phash: np.ndarray, dhash: np.ndarray) -> np.ndarray:
    """Return an (N, 2) uint64 code array from the stored signed pHash and dHash columns."""
    return np.stack([np.asarray(phash, dtype=np.int64), np.asarray(dhash, dtype=np.int64)], axis=1).view(np.uint64)


def _bit_rows(codes: np.ndarray) -> np.ndarray:
    """Return the codes' bits as a (128, N) uint8 matrix: one contiguous row per bit position (any fixed order)."""
    by_byte = np.ascontiguousarray(codes.view(np.uint8).reshape(len(codes), 16).T)
    bits: np.ndarray = np.unpackbits(by_byte, axis=0)
    return bits


def _argsort(keys: np.ndarray) -> np.ndarray:
    """Return the order of 32-bit keys: two passes of NumPy's radix sort on 16-bit halves (3x a comparison sort)."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    high = (keys >> 16).astype(np.uint16)[order]
    result: np.ndarray = order[np.argsort(high, kind="stable")]
    return result


def _table_bits(tables: int, key_bits: int, seed: int) -> list[np.ndarray]:
    """Return each table's bit positions: shuffled decks of all 128 bits, dealt ``key_bits`` at a time."""
    rng = np.random.default_rng(seed)
    deck: list[int] = []
    chosen = []
    for _ in range(tables):
        if len(deck) < key_bits:
            deck.extend(int(b) for b in rng.permutation(CODE_BITS) if b not in deck)
        chosen.append(np.array(deck[:key_bits]))
        deck = deck[key_bits:]
    return chosen


def _same_key_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every pair of positions whose keys are equal (work proportional to the pairs found)."""
    order = _argsort(keys)
    ordered = keys[order]
    lefts, rights = [], []
    starts = np.flatnonzero(ordered[1:] == ordered[:-1])  # runs: a pair at gap 1
    gap = 1
    while starts.size:
        lefts.append(order[starts])
        rights.append(order[starts + gap])
        gap += 1
        starts = starts[starts + gap < len(ordered)]
        starts = starts[ordered[starts + gap] == ordered[starts]]
    if not lefts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(lefts), np.concatenate(rights)


def key_bits_for(count: int) -> int:
    """Return the key length that keeps unrelated candidates near one per code: log2(count), within 16..24."""
    return int(min(24, max(16, math.ceil(math.log2(max(count, 2))))))


def near_pairs(
    codes: np.ndarray, max_distance: int, tables: int, key_bits: int, seed: int = 0, workers: int = 2
) -> NearPairs:
    """Return the pairs of distinct codes at most ``max_distance`` bits apart (``codes``: (N, 2) uint64, unique).

    Recall is exact for pairs under ``CODE_BITS // key_bits`` bits apart and probabilistic beyond (see above).
    """
    if len(codes) < 2:
        empty = np.empty(0, dtype=np.int64)
        return NearPairs(empty, empty, np.empty(0, dtype=np.int16))
    if key_bits > 32:
        raise ValueError("key_bits must be at most 32")
    codes = np.ascontiguousarray(codes)
    first = np.ascontiguousarray(codes[:, 0])
    bits = _bit_rows(codes)
    count = len(codes)

    def table(positions: np.ndarray) -> np.ndarray:
        keys = np.zeros(count, dtype=np.uint32)
        for position in positions:
            keys <<= np.uint32(1)
            keys |= bits[position]
        left, right = _same_key_pairs(keys)
        close = np.bitwise_count(first[left] ^ first[right]) <= max_distance  # prunes nearly every candidate
        left, right = left[close], right[close]
        close = distances(codes, left, right) <= max_distance
        left, right = left[close], right[close]
        found: np.ndarray = np.minimum(left, right) * count + np.maximum(left, right)
        return found

    # NumPy releases the GIL in sorts and array arithmetic, so tables run side by side on the cores.
    with ThreadPoolExecutor(max(1, min(workers, tables))) as pool:
        found = list(pool.map(table, _table_bits(tables, key_bits, seed)))
    pairs = np.unique(np.concatenate(found))
    left, right = pairs // count, pairs % count
    return NearPairs(left, right, distances(codes, left, right))
