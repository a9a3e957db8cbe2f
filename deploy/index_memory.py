"""Measure resident memory per vector of the index structures Sensorium keeps in RAM (Flat and IVF-Flat, 512 dims).

Builds the same FAISS structures as index/vector/flat.py (IndexIDMap2 over IndexFlatIP) and index/vector/ivf.py
(IndexIVFFlat with a hashtable direct map), adds random unit vectors in batches of 10,000 the way catch-up does, and
reports the growth of the process's resident set per vector (steady state and high-water mark). Usage:
``python deploy/index_memory.py [--count 200000]``; deploy/README.md quotes its output.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

DIM = 512
BATCH = 10_000


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_high_water_mark() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def measure(name: str, make: Callable[[], Any], count: int, rng: np.random.Generator) -> dict[str, Any]:
    """Return bytes per vector (steady and peak RSS growth) after adding ``count`` vectors to ``make()``."""
    index = make()
    batches = [rng.standard_normal((BATCH, DIM), dtype=np.float32) for _ in range(1)]
    batches[0] /= np.linalg.norm(batches[0], axis=1, keepdims=True)
    gc.collect()
    _reset_high_water_mark()
    before = _status_kib("VmRSS")
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        # One reused batch: the input arrays do not grow with count, so the growth is the index's own.
        index.add_with_ids(batches[0][:n], np.arange(start, start + n, dtype=np.int64))
    after, high = _status_kib("VmRSS"), _status_kib("VmHWM")
    return {
        "index": name,
        "vectors": count,
        "dim": DIM,
        "bytes_per_vector": round((after - before) * 1024 / count, 1),
        "peak_bytes_per_vector": round((high - before) * 1024 / count, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per index type."""
    faiss: Any = importlib.import_module("faiss")  # untyped extension module
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--nlist", type=int, default=2048, help="IVF lists (Sensorium: about 4 x sqrt(vectors))")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    def flat() -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))

    def ivf() -> Any:
        quantizer = faiss.IndexFlatIP(DIM)
        centroids = rng.standard_normal((args.nlist, DIM), dtype=np.float32)
        quantizer.add(centroids / np.linalg.norm(centroids, axis=1, keepdims=True))
        index = faiss.IndexIVFFlat(quantizer, DIM, args.nlist, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index

    print(json.dumps({"faiss": faiss.__version__, "count": args.count, "nlist": args.nlist}), flush=True)
    print(json.dumps(measure("flat (IndexIDMap2 + IndexFlatIP)", flat, args.count, rng)), flush=True)
    print(json.dumps(measure(f"ivf (IVF{args.nlist},Flat + hashtable)", ivf, args.count, rng)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
