"""Benchmark near-duplicate detection; prints one JSON object.

Quality (--originals, default 1,000): distinct generated photo-like images, each with 6 edited copies (resized
to 50 %, JPEG quality 40, cropped by 8 %, brightness +15 %, a small text watermark, rotated 2 degrees; see
tests/near_copies.py), every file JPEG-encoded and decoded the way ingest decodes it, hashed, then grouped with the
default settings. Reported per transform: the share of copies in their original's group and their Hamming
distances; overall: the pairs of distinct originals that share a group (target: at most 50).

Hashing speed: the numpy pHash + dHash Sensorium uses against imagehash 4.3.2 on the same decoded images.

Scale (--scale, default 100,000 and 1,000,000 codes): random 128-bit codes of which 10 % are copies of others
with 4 to 26 bits flipped; the time to find all near groups (pair search plus grouping), and the recall of the
planted pairs by distance. The 1,000,000 run must take at most 15x the 100,000 run.

Stored (--stored 100000 1000000): the same codes written to SQLite as indexed image assets with their hash rows;
the time the near tier takes to read them, search and group (what `sensorium duplicates` does before it renders).

Run: PYTHONPATH=. python bench/near_duplicates.py [--originals 1000] [--scale 100000 1000000] [--stored ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import DuplicateSettings, Settings
from index.duplicates.groups import hash_neighbours, leader_groups
from index.duplicates.phash import hamming, image_hashes
from index.ingest.images import open_image
from tests.near_copies import TRANSFORMS, jpeg_bytes, photo_like

_MAX_PIXELS = 64_000_000
_INSERT_CHUNK = 10_000


def _decoded(data: bytes) -> Any:
    image, _ = open_image(data, _MAX_PIXELS)
    return image


def quality(originals: int, settings: DuplicateSettings) -> dict[str, Any]:
    """Hash every original and copy, group them, and score the groups per transform."""
    names = ["original", *TRANSFORMS]
    phash, dhash, pixels = [], [], []
    started = time.perf_counter()
    for family in range(originals):
        image = photo_like(family)
        for name in names:
            data = jpeg_bytes(image) if name == "original" else TRANSFORMS[name](image)
            decoded = _decoded(data)
            hashes = image_hashes(decoded)
            phash.append(hashes.phash)
            dhash.append(hashes.dhash)
            pixels.append(decoded.width * decoded.height)
    generate_s = time.perf_counter() - started
    count = len(phash)
    owners = np.arange(count)
    started = time.perf_counter()
    neighbours = hash_neighbours(owners, np.array(phash), np.array(dhash), settings.near_max_distance, settings.tables)
    groups = leader_groups(neighbours, rank=lambda i: (-pixels[i], i), kind=lambda i: "image")
    group_s = time.perf_counter() - started
    group_of = {}
    for number, group in enumerate(groups):
        group_of[group.best] = number
        group_of.update((member, number) for member, _ in group.members)
    per_transform: dict[str, Any] = {}
    width = len(names)
    for offset, name in enumerate(names[1:], start=1):
        copies = range(offset, count, width)
        together = [i for i in copies if i in group_of and group_of.get(i - offset) == group_of[i]]
        distance = [hamming(phash[i], phash[i - offset]) + hamming(dhash[i], dhash[i - offset]) for i in copies]
        per_transform[name] = {
            "grouped_with_original": round(len(together) / len(copies), 4),
            "distance_p50": float(np.percentile(distance, 50)),
            "distance_p95": float(np.percentile(distance, 95)),
            "distance_max": int(max(distance)),
        }
    mixed_pairs = 0
    for group in groups:
        families = Counter(i // width for i in [group.best, *(m for m, _ in group.members)])
        keys = len(families)
        mixed_pairs += keys * (keys - 1) // 2
    all_copies = [i for i in range(count) if i % width]
    grouped = sum(1 for i in all_copies if i in group_of and group_of.get(i - i % width) == group_of[i])
    return {
        "originals": originals,
        "copies": len(all_copies),
        "near_max_distance": settings.near_max_distance,
        "copies_grouped_with_original": round(grouped / len(all_copies), 4),
        "distinct_original_pairs_grouped": mixed_pairs,
        "groups": len(groups),
        "per_transform": per_transform,
        "generate_and_hash_s": round(generate_s, 2),
        "group_s": round(group_s, 3),
    }


def hashing_speed(images: int = 200) -> dict[str, Any]:
    """Time the numpy hashes and imagehash's on the same decoded images (interleaved)."""
    import imagehash

    decoded = [_decoded(jpeg_bytes(photo_like(10_000 + i))) for i in range(images)]
    ours = theirs = 0.0
    for image in decoded:
        started = time.perf_counter()
        image_hashes(image)
        ours += time.perf_counter() - started
        started = time.perf_counter()
        imagehash.phash(image)
        imagehash.dhash(image)
        theirs += time.perf_counter() - started
    return {
        "images": images,
        "numpy_ms_per_image": round(1000 * ours / images, 3),
        "imagehash_ms_per_image": round(1000 * theirs / images, 3),
    }


def planted_codes(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return pHash and dHash columns of ``count`` codes, 10 % of them copies, with (source, copy) rows."""
    copies = count // 10
    distinct = count - copies
    codes = rng.integers(0, 2**64, size=(count, 2), dtype=np.uint64)
    source = rng.integers(0, distinct, size=copies)
    flips = rng.integers(4, 27, size=copies)
    masks = np.zeros((copies, 2), dtype=np.uint64)
    for row, flipped in enumerate(flips):
        for bit in rng.choice(128, size=flipped, replace=False):
            masks[row, bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
    codes[distinct:] = codes[source] ^ masks
    signed = codes.view(np.int64)
    return signed[:, 0], signed[:, 1], source, flips


def scale(count: int, settings: DuplicateSettings) -> dict[str, Any]:
    """Time finding all near groups among ``count`` codes; return the time and the recall of planted pairs."""
    rng = np.random.default_rng(count)
    phash, dhash, source, flips = planted_codes(count, rng)
    owners = np.arange(count)
    started = time.perf_counter()
    neighbours = hash_neighbours(owners, phash, dhash, settings.near_max_distance, settings.tables)
    groups = leader_groups(neighbours, rank=lambda i: i, kind=lambda i: "image")
    elapsed = time.perf_counter() - started
    copies_from = count - len(source)
    found = np.array([copies_from + row in neighbours.get(int(src), {}) for row, src in enumerate(source)])
    by_distance = {
        f"{low}-{low + 3}": round(float(found[(flips >= low) & (flips <= low + 3)].mean()), 4)
        for low in range(4, 27, 4)
    }
    return {
        "codes": count,
        "seconds": round(elapsed, 3),
        "groups": len(groups),
        "planted_pair_recall": round(float(found.mean()), 4),
        "recall_by_distance": by_distance,
    }


def _store(settings: Settings, phash: np.ndarray, dhash: np.ndarray) -> None:
    """Write one indexed image asset per code, with its hash row, straight into the database."""
    from sqlalchemy import insert

    from core.db.engine import write_session
    from core.db.hash_models import PerceptualHash
    from core.db.models import Asset, utcnow

    now = utcnow()
    for start in range(0, len(phash), _INSERT_CHUNK):
        rows = range(start, min(start + _INSERT_CHUNK, len(phash)))
        with write_session(settings) as session:
            session.execute(
                insert(Asset),
                [
                    {
                        "id": f"{i:032x}",
                        "sha256": f"{i:064x}",
                        "kind": "image",
                        "name": f"{i}.jpg",
                        "bytes": 1000,
                        "width": 640,
                        "height": 480,
                        "meta": {},
                        "status": "indexed",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in rows
                ],
            )
            session.execute(
                insert(PerceptualHash),
                [{"asset_id": f"{i:032x}", "phash": int(phash[i]), "dhash": int(dhash[i])} for i in rows],
            )


def stored(count: int) -> dict[str, Any]:
    """Time finding all near groups among ``count`` hashes stored in SQLite (read, search, group; not rendered)."""
    from core.db.engine import dispose_engines, read_session
    from index.duplicates.service import near_group_ids

    rng = np.random.default_rng(count)
    phash, dhash, _, _ = planted_codes(count, rng)
    with tempfile.TemporaryDirectory(prefix="sensorium-dups-") as folder:
        settings = Settings(data_dir=Path(folder))
        _store(settings, phash, dhash)
        started = time.perf_counter()
        with read_session(settings) as session:
            groups = near_group_ids(session, None, settings)
        elapsed = time.perf_counter() - started
        dispose_engines()
    return {"stored_hashes": count, "seconds": round(elapsed, 3), "groups": len(groups)}


def main() -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--stored", type=int, nargs="*", default=[], help="also time groups from SQLite at these sizes")
    args = parser.parse_args()
    settings = DuplicateSettings()
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_before": os.getloadavg()},
        "settings": settings.model_dump(),
    }
    if args.originals:
        report["quality"] = quality(args.originals, settings)
        report["hashing"] = hashing_speed()
    runs = [scale(count, settings) for count in args.scale]
    if runs:
        report["scale"] = runs
        if len(runs) == 2:
            report["scale_ratio"] = round(runs[1]["seconds"] / runs[0]["seconds"], 2)
    from_db = [stored(count) for count in args.stored]
    if from_db:
        report["stored"] = from_db
        if len(from_db) == 2:
            report["stored_ratio"] = round(from_db[1]["seconds"] / from_db[0]["seconds"], 2)
    report["machine"]["load_avg_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
