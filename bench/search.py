"""Benchmark search: end-to-end overhead at 100k vectors and IVF recall and latency at 1M; prints one JSON object.

Overhead (--vectors, default 100,000): a synthetic library (one image asset per clustered vector) is written
into a SQLite data dir and indexed with `reindex`; the p50 of a full text search (index.search, vector mode:
change-log catch-up, text encoder, FAISS, database lookups, grouping) is divided by the p50 of the raw parts alone
(encode_texts plus a raw FAISS IndexFlatIP search of the same vectors with the same k), query by query, alternating.
The encoder, raw FAISS and the live index's search are also timed alone, to show where the difference lies.
Runtimes: each uncached query is also encoded, and searched end to end, with the torch runtime (the default is
ONNX Runtime on CPU), alternating. Cache: one query asked again and again (served from the query cache) is timed
end to end against a raw FAISS search of its vector, alternating.

ANN (--ann-vectors, default 1,000,000): clustered vectors go into the IVF backend Sensorium builds above
SENSORIUM_INDEX__IVF_THRESHOLD (same list count, training sample and nprobe); recall@10 is measured against
exact search, and p50 per query (no text encoder) through the live index, next to exact search as the baseline.

Run: PYTHONPATH=. python bench/search.py [--vectors 100000] [--ann-vectors 1000000] [--skip-overhead|--skip-ann]
     PYTHONPATH=. python bench/search.py --http ...   (REST API against in-process search: bench/http_search.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import EncoderSettings, IndexSettings, Settings
from tests.clustered_vectors import clustered_vectors, recall_at_k

_INSERT_CHUNK = 5000
_WORDS = ["red", "car", "beach", "dog", "sunset", "city", "night", "forest", "portrait", "snow", "river", "cat"]


def _p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def _p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 3)


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def write_library(settings: Settings, vectors: np.ndarray, model_id: str) -> None:
    """Write one indexed image asset per vector, with its segment and change-log entry."""
    from sqlalchemy import insert

    from core.db.engine import write_session
    from core.db.models import Asset, ChangeLog, Segment
    from index.library import claim_model

    with write_session(settings) as session:
        claim_model(session, model_id)
    for start in range(0, len(vectors), _INSERT_CHUNK):
        ids = range(start + 1, start + 1 + len(vectors[start : start + _INSERT_CHUNK]))
        assets = [
            {"id": f"{i:032x}", "sha256": f"{i:064x}", "kind": "image", "name": f"synthetic-{i:07d}.jpg",
             "uri": f"/synthetic/{i:07d}.jpg", "collection": "default", "meta": {}, "status": "indexed"}
            for i in ids
        ]  # fmt: skip
        segments = [
            {
                "id": i,
                "asset_id": f"{i:032x}",
                "kind": "image",
                "model_id": model_id,
                "vector": vectors[i - 1].tobytes(),
            }
            for i in ids
        ]
        with write_session(settings) as session:
            session.execute(insert(Asset), assets)
            session.execute(insert(Segment), segments)
            session.execute(insert(ChangeLog), [{"segment_id": i, "op": "add"} for i in ids])


def search_overhead(count: int, queries: int, model: str, pretrained: str) -> dict[str, Any]:
    """Return p50s of end-to-end text search and of its raw parts over ``count`` stored vectors."""
    import faiss

    from index.encoders import get_encoder
    from index.reindex import rebuild_snapshot
    from index.search import SearchRequest, search
    from index.service import get_live_index

    with tempfile.TemporaryDirectory(prefix="sensorium-bench-search-") as tmp:
        settings = Settings(data_dir=Path(tmp), encoder=EncoderSettings(model=model, pretrained=pretrained))
        encoder = get_encoder(settings.encoder)
        torch_settings = settings.model_copy(
            update={"encoder": settings.encoder.model_copy(update={"runtime": "torch"})}
        )
        torch_encoder = get_encoder(torch_settings.encoder)
        vectors = clustered_vectors(count, encoder.dim, clusters=max(1, count // 100), seed=0, spread=1.0)
        started = time.perf_counter()
        write_library(settings, vectors, encoder.model_id)
        rebuild_snapshot(settings)
        build_s = time.perf_counter() - started
        raw_index = faiss.IndexFlatIP(encoder.dim)
        raw_index.add(vectors)
        k = max(64, 10 * settings.index.oversample)  # what search() asks FAISS for, for a page of 10

        def raw(text: str) -> None:
            raw_index.search(encoder.encode_texts([text]), k)

        def end_to_end(text: str, on: Settings = settings) -> None:
            assert len(search(SearchRequest(text=text, limit=10, mode="vector"), on)) == 10

        rng = np.random.default_rng(7)
        texts = [" ".join(rng.choice(_WORDS, size=3).tolist()) + f" {i}" for i in range(queries + 5)]
        for text in texts[:5]:  # warm-up: first catch-up, caches, allocator
            raw(text)
            end_to_end(text)
            end_to_end(text + " torch", torch_settings)
            torch_encoder.encode_texts([text])
        live = get_live_index(settings)
        raw_s, e2e_s, encode_s, faiss_s, index_s = [], [], [], [], []
        torch_encode_s, torch_e2e_s = [], []
        for text in texts[5:]:  # alternate, so other load on the machine hits both sides alike
            raw_s.append(_timed(partial(raw, text)))
            e2e_s.append(_timed(partial(end_to_end, text)))
            started = time.perf_counter()
            vector = encoder.encode_texts([text])
            encode_s.append(time.perf_counter() - started)
            faiss_s.append(_timed(partial(raw_index.search, vector, k)))
            index_s.append(_timed(partial(live.search, vector, k)))
            torch_encode_s.append(_timed(partial(torch_encoder.encode_texts, [text])))
            torch_e2e_s.append(_timed(partial(end_to_end, text + " torch", torch_settings)))
        repeated, repeated_s, repeated_faiss_s = texts[5], [], []
        repeated_vector = encoder.encode_texts([repeated])
        for _ in range(queries):  # the query cache answers: what is left is FAISS and the database
            repeated_s.append(_timed(partial(end_to_end, repeated)))
            repeated_faiss_s.append(_timed(partial(raw_index.search, repeated_vector, k)))
    return {
        "vectors": count,
        "queries": queries,
        "backend": "flat (exact: under the IVF threshold)",
        "library_build_s": round(build_s, 1),
        "end_to_end_p50_ms": _p50_ms(e2e_s),
        "raw_p50_ms": _p50_ms(raw_s),
        "raw_encode_text_p50_ms": _p50_ms(encode_s),
        "raw_faiss_search_p50_ms": _p50_ms(faiss_s),
        "index_search_p50_ms": _p50_ms(index_s),
        "overhead_ratio": round(statistics.median(e2e_s) / statistics.median(raw_s), 3),
        "target": "<= 1.2",
        "runtimes": {
            "encode_text_p50_ms": {"onnx": _p50_ms(encode_s), "torch": _p50_ms(torch_encode_s)},
            "encode_text_onnx_over_torch": round(statistics.median(encode_s) / statistics.median(torch_encode_s), 3),
            "end_to_end_uncached_p50_ms": {"onnx": _p50_ms(e2e_s), "torch": _p50_ms(torch_e2e_s)},
            "end_to_end_onnx_over_torch": round(statistics.median(e2e_s) / statistics.median(torch_e2e_s), 3),
            "target": "onnx <= 0.7 x torch",
        },
        "repeated_query": {
            "end_to_end_p50_ms": _p50_ms(repeated_s),
            "faiss_search_p50_ms": _p50_ms(repeated_faiss_s),
            "difference_ms": round(_p50_ms(repeated_s) - _p50_ms(repeated_faiss_s), 3),
            "target": "difference <= 5 ms",
        },
    }


def ann_recall(count: int, queries: int, clusters: int, nprobes: list[int]) -> dict[str, Any]:
    """Return build time, recall@10 and per-query latency of Sensorium's IVF backend over ``count`` vectors."""
    import faiss

    from index.vector import factory
    from index.vector.live import LiveIndex

    dim = 512
    settings = IndexSettings(use_gpu=False)
    base = clustered_vectors(count, dim, clusters=clusters, seed=0, spread=1.0)
    probe = clustered_vectors(queries, dim, clusters=clusters, seed=1, spread=1.0)
    _, truth = faiss.knn(probe, base, 10, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = [
        _timed(partial(faiss.knn, probe[q : q + 1], base, 10, metric=faiss.METRIC_INNER_PRODUCT)) for q in range(20)
    ]

    nlist = factory.nlist_for(count, settings)
    sample = base[np.sort(np.random.default_rng(0).choice(count, factory.training_size(count, nlist), replace=False))]
    started = time.perf_counter()
    ivf = factory.train_ivf(sample, count, settings)
    train_s = time.perf_counter() - started
    del sample
    started = time.perf_counter()
    for start in range(0, count, 100_000):
        ivf.add(np.arange(start, min(start + 100_000, count), dtype=np.int64), base[start : start + 100_000])
    add_s = time.perf_counter() - started
    del base

    live = LiveIndex("bench", dim, Path(tempfile.gettempdir()) / "unused.snapshot", settings, auto_rebuild=False)
    live.backend = ivf  # the search path every query takes: lock, backend, FAISS
    per_nprobe = {}
    for nprobe in sorted({*nprobes, settings.nprobe}):
        ivf.nprobe = nprobe
        found = np.stack([live.search(probe[q : q + 1], 10)[1][0] for q in range(queries)])
        latency = [_timed(partial(live.search, probe[q : q + 1], 10)) for q in range(queries)]
        latency_k64 = [_timed(partial(live.search, probe[q : q + 1], 64)) for q in range(queries)]
        per_nprobe[str(nprobe)] = {
            "recall_at_10": round(recall_at_k(found, truth), 4),
            "p50_ms": _p50_ms(latency),
            "p95_ms": _p95_ms(latency),
            "p50_ms_k64": _p50_ms(latency_k64),
        }
    return {
        "vectors": count,
        "dim": dim,
        "clusters": clusters,
        "queries": queries,
        "nlist": nlist,
        "training_vectors": factory.training_size(count, nlist),
        "train_s": round(train_s, 1),
        "add_s": round(add_s, 1),
        "exact_p50_ms": _p50_ms(exact_s),
        "default_nprobe": settings.nprobe,
        "at_default_nprobe": per_nprobe[str(settings.nprobe)],
        "by_nprobe": per_nprobe,
        "target": "recall@10 >= 0.95 with p50 <= 2 ms",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected parts and return the report."""
    report: dict[str, Any] = {
        "benchmark": "search",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_before": os.getloadavg()},
        "model": f"{args.model} ({args.pretrained})",
    }
    if not args.skip_overhead:
        report["overhead"] = search_overhead(args.vectors, args.queries, args.model, args.pretrained)
    if not args.skip_ann:
        report["ann"] = ann_recall(args.ann_vectors, args.ann_queries, args.clusters, args.nprobe)
    report["machine"]["load_avg_after"] = os.getloadavg()
    return report


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vectors", type=int, default=100_000, help="library size for the overhead measurement")
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--ann-vectors", type=int, default=1_000_000)
    p.add_argument("--ann-queries", type=int, default=300)
    p.add_argument("--clusters", type=int, default=5000)
    p.add_argument("--nprobe", type=int, nargs="*", default=[8, 16, 64], help="extra nprobe values to report")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-ann", action="store_true")
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="none", help="random weights: the same cost as the pretrained ones")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with --http, the REST one) and print the report as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--http" in args:
        from bench.http_search import main as http_main

        http_main([a for a in args if a != "--http"])
        return
    print(json.dumps(run(parser().parse_args(args)), indent=2))


if __name__ == "__main__":
    main()
