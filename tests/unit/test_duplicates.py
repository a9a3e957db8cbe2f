"""Perceptual hashes match imagehash; the multi-index search finds what brute force finds; groups never chain."""

from __future__ import annotations

import numpy as np
import pytest

from index.duplicates.groups import hash_neighbours, leader_groups
from index.duplicates.near import CODE_BITS, as_codes, near_pairs
from index.duplicates.phash import dhash, hamming, image_hashes, phash
from tests.near_copies import TRANSFORMS, photo_like


def test_hashes_match_imagehash_bit_for_bit() -> None:
    imagehash = pytest.importorskip("imagehash")
    for seed in range(5):
        image = photo_like(seed)
        assert phash(image) & (2**64 - 1) == int(str(imagehash.phash(image)), 16)
        assert dhash(image) & (2**64 - 1) == int(str(imagehash.dhash(image)), 16)


def test_every_transform_stays_near_and_another_photo_does_not() -> None:
    import io

    from PIL import Image

    original = image_hashes(photo_like(11))
    for name, transform in TRANSFORMS.items():
        copy = image_hashes(Image.open(io.BytesIO(transform(photo_like(11)))))
        assert hamming(original.phash, copy.phash) + hamming(original.dhash, copy.dhash) <= 26, name
    other = image_hashes(photo_like(12))
    assert hamming(original.phash, other.phash) + hamming(original.dhash, other.dhash) > 26


def _flip(code: np.ndarray, bits: np.ndarray) -> np.ndarray:
    flipped = code.copy()
    for bit in bits:
        flipped[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return flipped


def test_near_pairs_agree_with_brute_force() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**64, size=(300, 2), dtype=np.uint64)
    copies = np.stack(
        [_flip(base[i], rng.choice(128, size=int(rng.integers(0, 8)), replace=False)) for i in range(100)]
    )
    codes = np.unique(np.concatenate([base, copies]), axis=0)
    found = near_pairs(codes, max_distance=10, tables=16, key_bits=16)
    left, right = np.triu_indices(len(codes), 1)
    distance = np.bitwise_count(codes[left] ^ codes[right]).sum(axis=1)
    exact_limit = CODE_BITS // 16 - 1  # pigeonhole: 8 disjoint keys per deck, one must match exactly
    wanted = {(int(a), int(b)) for a, b, d in zip(left, right, distance, strict=True) if d <= exact_limit}
    got = {(int(a), int(b)): int(d) for a, b, d in zip(found.left, found.right, found.distance, strict=True)}
    assert wanted and wanted <= set(got)
    assert all(d <= 10 and d == int(np.bitwise_count(codes[a] ^ codes[b]).sum()) for (a, b), d in got.items())


def test_groups_are_built_around_the_best_and_do_not_chain() -> None:
    rng = np.random.default_rng(9)
    a = rng.integers(0, 2**64, size=2, dtype=np.uint64)
    b = _flip(a, np.arange(0, 12))  # 12 bits from a
    c = _flip(b, np.arange(64, 76))  # 12 bits from b, 24 from a
    codes = np.stack([a, b, c]).view(np.int64)
    neighbours = hash_neighbours(np.arange(3), codes[:, 0], codes[:, 1], max_distance=20, tables=32)
    assert neighbours == {0: {1: 12}, 1: {0: 12, 2: 12}, 2: {1: 12}}
    (group,) = leader_groups(neighbours, rank=lambda i: i, kind=lambda i: "image")
    assert (group.best, group.members) == (0, [(1, 12)])  # c is near b only, so it stays out of a's group
    (middle,) = leader_groups(neighbours, rank=lambda i: (i != 1, i), kind=lambda i: "image")
    assert (middle.best, sorted(middle.members)) == (1, [(0, 12), (2, 12)])
    assert leader_groups(neighbours, rank=lambda i: i, kind=lambda i: "video" if i else "image") == [
        type(group)(1, [(2, 12)])
    ]


def test_identical_codes_of_several_assets_group_at_distance_zero() -> None:
    codes = as_codes(np.array([5, 5, 7]), np.array([1, 1, -1])).view(np.int64)
    neighbours = hash_neighbours(np.array([0, 1, 1]), codes[:, 0], codes[:, 1], max_distance=4, tables=4)
    assert neighbours == {0: {1: 0}, 1: {0: 0}}
