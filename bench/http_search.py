"""Search latency through the REST API against in-process search, at the same concurrency; prints one JSON object.

A synthetic library of N clustered vectors (one image segment per asset) is written straight into a SQLite data
dir, then the same text queries run (a) in-process through index.search with C threads and (b) as POST /v1/search
against a `sensorium serve` process with C client threads (keep-alive connections). The ratio compares p50s.

Run: PYTHONPATH=. python bench/http_search.py [--vectors 100000] [--concurrency 1 8] [--queries 400]
(or `python bench/search.py --http ...`, which delegates here).

Micro-batching (--micro-batching; use --model ViT-B-32): two servers on the same library, one encoding each text
query alone (SENSORIUM_ENCODER__QUERY_BATCH_WAIT_MS=0), one batching concurrent ones (the default wait), both with
the query cache off; C clients (default 8) send distinct queries to each in turn, round by round. Between rounds
the same process times what the text encoder itself gains from one call with C texts over C single calls, so
the two gains are measured under the same load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_INSERT_CHUNK = 5000


def _settings(data_dir: Path, model: str, pretrained: str) -> Any:
    from core.settings import EncoderSettings, Settings

    return Settings(data_dir=data_dir, encoder=EncoderSettings(model=model, pretrained=pretrained))


def build_library(settings: Any, count: int, seed: int = 0) -> int:
    """Write ``count`` synthetic image assets with clustered vectors (unless already there); return the total."""
    from sqlalchemy import func, insert, select

    from core.db.engine import write_session
    from core.db.models import Asset, ChangeLog, Segment
    from index.encoders import get_encoder
    from index.library import claim_model
    from index.reindex import rebuild_snapshot
    from tests.clustered_vectors import clustered_vectors

    encoder = get_encoder(settings.encoder)
    with write_session(settings) as session:
        claim_model(session, encoder.model_id)
        have = int(session.scalar(select(func.count()).select_from(Segment)) or 0)
    if have >= count:
        return have
    vectors = clustered_vectors(count - have, encoder.dim, clusters=max(1, count // 100), seed=seed)
    for start in range(0, len(vectors), _INSERT_CHUNK):
        chunk = vectors[start : start + _INSERT_CHUNK]
        ids = range(have + start + 1, have + start + 1 + len(chunk))
        assets = [
            {
                "id": f"{i:032x}",
                "sha256": f"{i:064x}",
                "kind": "image",
                "source": "ingested",
                "name": f"synthetic-{i:07d}.jpg",
                "uri": f"/synthetic/{i:07d}.jpg",
                "bytes": 1,
                "collection": "default",
                "meta": {},
                "status": "indexed",
            }
            for i in ids
        ]
        segments = [
            {"id": i, "asset_id": f"{i:032x}", "kind": "image", "model_id": encoder.model_id, "vector": v.tobytes()}
            for i, v in zip(ids, chunk, strict=True)
        ]
        with write_session(settings) as session:
            session.execute(insert(Asset), assets)
            session.execute(insert(Segment), segments)
            session.execute(insert(ChangeLog), [{"segment_id": i, "op": "add"} for i in ids])
    return rebuild_snapshot(settings)


def _queries(count: int) -> list[str]:
    words = ["red", "car", "beach", "dog", "sunset", "city", "night", "forest", "portrait", "snow", "river", "cat"]
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(words, size=3).tolist()) + f" {i}" for i in range(count)]


def _timed(call: Callable[[str], None], queries: list[str], concurrency: int) -> tuple[list[float], float]:
    """Run every query once, ``concurrency`` at a time; return each latency (s) and the wall time (s)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(query: str) -> None:
        started = time.perf_counter()
        call(query)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)

    wall = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, queries))
    return latencies, time.perf_counter() - wall


def _summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3),
        "requests_per_s": round(len(ordered) / wall, 1),
    }


def compare(
    local: Callable[[str], None], remote: Callable[[str], None], queries: list[str], concurrency: int, rounds: int
) -> dict[str, Any]:
    """Alternate in-process and HTTP rounds over the same queries, so both see the same machine load."""
    results: dict[str, tuple[list[float], float]] = {"in_process": ([], 0.0), "http": ([], 0.0)}
    size = max(concurrency, len(queries) // rounds)
    for start in range(0, len(queries), size):
        batch = queries[start : start + size]
        for name, call in (("in_process", local), ("http", remote)):
            latencies, wall = _timed(call, batch, concurrency)
            results[name] = (results[name][0] + latencies, results[name][1] + wall)
    local_summary, remote_summary = (_summary(*results[name]) for name in ("in_process", "http"))
    return {
        "concurrency": concurrency,
        "in_process": local_summary,
        "http": remote_summary,
        "p50_ratio": round(remote_summary["p50_ms"] / local_summary["p50_ms"], 3),
    }


def _in_process(settings: Any, limit: int, mode: str) -> Callable[[str], None]:
    from index.search import SearchRequest, search

    def call(query: str) -> None:
        search(SearchRequest(text=query, limit=limit, mode=mode), settings)

    return call


class _HttpClient:
    """One keep-alive connection per thread: what a well-behaved API client does."""

    def __init__(self, port: int, secret: str, limit: int, mode: str) -> None:
        self.port, self.limit, self.mode = port, limit, mode
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.local = threading.local()

    def __call__(self, query: str) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = json.dumps({"text": query, "limit": self.limit, "mode": self.mode})
        connection.request("POST", "/v1/search", body=body, headers=self.headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"search failed: {response.status} {payload[:300]!r}")


def _start_server(
    settings: Any, port: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update(
        {
            "SENSORIUM_DATA_DIR": str(settings.data_dir),
            "SENSORIUM_ENCODER__MODEL": settings.encoder.model,
            "SENSORIUM_ENCODER__PRETRAINED": settings.encoder.pretrained,
            "SENSORIUM_API__RATE_LIMIT_PER_MINUTE": "0",
            "SENSORIUM_AUTH__DISABLED": "false",
            "PYTHONPATH": str(REPO),
            **(extra_env or {}),
        }
    )
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("server not ready after 300 s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the library, measure both ways at each concurrency, and return the report."""
    from core.apikeys import create_key
    from index.encoders import get_encoder
    from index.service import get_live_index

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="sensorium-bench-http-"))
    settings = _settings(data_dir, args.model, args.pretrained)
    started = time.perf_counter()
    vectors = build_library(settings, args.vectors)
    build_s = time.perf_counter() - started
    encoder = get_encoder(settings.encoder)
    get_live_index(settings)  # load before timing, as the server does at start
    queries = _queries(args.queries)
    warmup = _queries(args.warmup)

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "vectors": vectors,
        "dim": encoder.dim,
        "model": encoder.model_id,
        "mode": args.mode,
        "limit": args.limit,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "queries": args.queries,
        "setup_s": round(build_s, 1),
        "results": [],
    }
    in_process = _in_process(settings, args.limit, args.mode)
    for query in warmup:
        in_process(query)

    port = _free_port()
    server = _start_server(settings, port, data_dir / "bench-server.log")
    try:
        secret = create_key("bench", ["search"], settings).secret
        client = _HttpClient(port, secret, args.limit, args.mode)
        for query in warmup:
            client(query)
        for concurrency in args.concurrency:
            report["results"].append(compare(in_process, client, queries, concurrency, args.rounds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return report


def micro_batching(args: argparse.Namespace) -> dict[str, Any]:
    """Compare a batching server with a one-query-at-a-time server, and both with the encoder's own batch gain."""
    from core.apikeys import create_key
    from index.encoders import get_encoder

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="sensorium-bench-batching-"))
    settings = _settings(data_dir, args.model, args.pretrained)
    vectors = build_library(settings, args.vectors)
    encoder = get_encoder(settings.encoder)  # exports the towers once, before the servers start
    clients = args.concurrency[-1]
    waits = {"unbatched": "0", "batched": str(settings.encoder.query_batch_wait_ms)}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    calls: dict[str, _HttpClient] = {}
    secret = create_key("bench", ["search"], settings).secret
    load_before = os.getloadavg()
    try:
        for name, wait in waits.items():
            port = _free_port()
            env = {"SENSORIUM_ENCODER__QUERY_BATCH_WAIT_MS": wait, "SENSORIUM_ENCODER__QUERY_CACHE_SIZE": "0"}
            servers[name] = _start_server(settings, port, data_dir / f"bench-{name}.log", env)
            calls[name] = _HttpClient(port, secret, args.limit, args.mode)
            _timed(calls[name], _queries(args.warmup), clients)
        latencies: dict[str, list[float]] = {name: [] for name in waits}
        walls = dict.fromkeys(waits, 0.0)
        singles_s: list[float] = []
        batch_s: list[float] = []
        queries = _queries(args.queries)
        size = max(clients, len(queries) // args.rounds)
        for number, start in enumerate(range(0, len(queries), size)):
            chunk = queries[start : start + size]
            order = list(waits) if number % 2 == 0 else list(reversed(waits))
            for name in order:
                got, wall = _timed(calls[name], chunk, clients)
                latencies[name] += got
                walls[name] += wall
            texts = [f"{text} alone" for text in chunk[:clients]]
            started = time.perf_counter()
            for text in texts:
                encoder.encode_texts([text])
            singles_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            encoder.encode_texts(texts)
            batch_s.append(time.perf_counter() - started)
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=30)
    summaries = {name: _summary(latencies[name], walls[name]) for name in waits}
    http_gain = summaries["batched"]["requests_per_s"] / summaries["unbatched"]["requests_per_s"]
    encoder_gain = statistics.median(singles_s) / statistics.median(batch_s)
    return {
        "benchmark": "http micro-batching",
        "machine": {"cpus": os.cpu_count(), "load_avg_before": load_before, "load_avg_after": os.getloadavg()},
        "vectors": vectors,
        "model": encoder.model_id,
        "runtime": type(encoder).__name__,
        "clients": clients,
        "queries_per_server": len(queries),
        "batch_wait_ms": settings.encoder.query_batch_wait_ms,
        **summaries,
        "http_gain": round(http_gain, 3),
        "encoder_gain_batch_vs_singles": round(encoder_gain, 3),
        "http_gain_over_encoder_gain": round(http_gain / encoder_gain, 3),
        "p99_batched_over_unbatched": round(summaries["batched"]["p99_ms"] / summaries["unbatched"]["p99_ms"], 3),
        "target": "http_gain_over_encoder_gain >= 0.8, p99 ratio <= 1.5",
    }


def parser() -> argparse.ArgumentParser:
    """Return the command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--vectors", type=int, default=100_000, help="library size (one vector per asset)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="client threads (and search threads)")
    p.add_argument("--queries", type=int, default=400, help="timed queries per concurrency level")
    p.add_argument("--rounds", type=int, default=10, help="alternating in-process/HTTP rounds per level")
    p.add_argument("--warmup", type=int, default=30, help="untimed queries first")
    p.add_argument("--limit", type=int, default=10, help="results per query")
    p.add_argument("--mode", default="vector", choices=["vector", "text", "hybrid"], help="search mode")
    p.add_argument("--model", default="tiny-clip", help="encoder model (tiny-clip keeps encoding from hiding overhead)")
    p.add_argument("--pretrained", default="none", help="encoder weights")
    p.add_argument("--data-dir", default=None, help="reuse a bench library here (default: a new temp dir)")
    p.add_argument("--micro-batching", action="store_true", help="batching server against one-at-a-time server")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report as JSON."""
    # The same OpenMP policy `sensorium serve` uses, so the in-process baseline runs torch the same way.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = parser().parse_args(argv)
    print(json.dumps(micro_batching(args) if args.micro_batching else run(args), indent=2))


if __name__ == "__main__":
    main()
