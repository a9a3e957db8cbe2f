"""Does one key's long-poll waiting slow another key's search? Prints one JSON object.

A `sensorium serve` process runs with a Redis broker and no worker, so queued jobs never end and every
``GET /v1/jobs/{id}?wait=`` lasts its full time. Key A holds ``--waits`` such waits at once (the per-key wait cap is
set above that, so what is measured is whether waiting holds threads); key B searches sequentially meanwhile.
Unloaded and loaded rounds alternate in the same server; the figure is loaded p50 / unloaded p50 (target <= 1.5).

Run: PYTHONPATH=. python bench/waits.py [--waits 45] [--wait-s 25] [--searches 40] [--rounds 2] [--model ViT-B-32]
Needs Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
QUERIES = ("a red car", "a lighthouse at dusk", "two dogs on a beach", "a bowl of soup", "city lights at night")


def _free_redis_db() -> int:
    import redis

    for number in range(15, 0, -1):
        if redis.Redis(host="127.0.0.1", port=6379, db=number).dbsize() == 0:
            return number
    raise SystemExit("no empty Redis database on 127.0.0.1:6379")


def _start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with sock, log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--fd", str(sock.fileno())],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"server not ready:\n{log.read_text()}")


def _waits_in_progress(url: str) -> int:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("sensorium_waits_in_progress "):
            return int(float(line.split()[1]))
    return -1


def _search_latencies(client: httpx.Client, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        response = client.post("/v1/search", json={"text": QUERIES[i % len(QUERIES)], "limit": 10})
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    return latencies


def _loaded_round(url: str, waiter: httpx.Client, searcher: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    job = waiter.post("/v1/generate", json={"prompt": "a fox", "generator": "tiny-random"})
    job.raise_for_status()
    job_url = job.json()["url"]
    statuses: list[int] = []

    def hold() -> None:
        statuses.append(waiter.get(f"{job_url}?wait={args.wait_s}").status_code)

    threads = [threading.Thread(target=hold) for _ in range(args.waits)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while _waits_in_progress(url) < args.waits:
        if time.monotonic() - started > args.wait_s / 2:
            raise SystemExit(f"only {_waits_in_progress(url)} of {args.waits} waits were held")
        time.sleep(0.05)
    held_after_s = time.monotonic() - started
    latencies = _search_latencies(searcher, args.searches)
    ended_during_searches = len(statuses)
    for thread in threads:
        thread.join()
    return {
        "latencies": latencies,
        "waits_held_after_s": round(held_after_s, 3),
        "waits_ended_before_searches_done": ended_during_searches,
        "wait_statuses": sorted(set(statuses)),
    }


def _p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    """Run the benchmark and print its JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=45)
    parser.add_argument("--wait-s", type=float, default=25.0)
    parser.add_argument("--searches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()

    import redis

    from core.apikeys import create_key
    from core.settings import EncoderSettings, Settings

    redis_db = _free_redis_db()
    with tempfile.TemporaryDirectory(prefix="bench-waits-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = Settings(data_dir=data_dir, encoder=EncoderSettings(model=args.model, pretrained="none"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "SENSORIUM_DATA_DIR": str(data_dir),
                "SENSORIUM_ENCODER__MODEL": args.model,
                "SENSORIUM_ENCODER__PRETRAINED": "none",
                "SENSORIUM_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
                "SENSORIUM_API__MAX_WAITS_PER_KEY": str(args.waits + 5),
                "SENSORIUM_API__RATE_LIMIT_PER_MINUTE": "0",
                "SENSORIUM_WHISPER__ENABLED": "false",
            }
        )
        os.environ.update({k: v for k, v in env.items() if k.startswith("SENSORIUM_")})
        process, url = _start_server(env, Path(tmp) / "server.log")
        try:
            waiter_key = create_key("bench-waiter", ["generate"], settings).secret
            searcher_key = create_key("bench-searcher", ["search"], settings).secret
            timeout = args.wait_s + 120
            with (
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {waiter_key}"}, timeout=timeout) as a,
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {searcher_key}"}, timeout=timeout) as b,
            ):
                _search_latencies(b, 10)  # warm-up: encoder, index, connections
                unloaded: list[float] = []
                loaded: list[float] = []
                rounds = []
                for _ in range(args.rounds):
                    unloaded += _search_latencies(b, args.searches)
                    round_ = _loaded_round(url, a, b, args)
                    loaded += round_.pop("latencies")
                    rounds.append(round_)
        finally:
            process.terminate()
            process.wait(timeout=30)
            redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()
    figures = {
        "benchmark": "waits",
        "model": args.model,
        "waits": args.waits,
        "wait_s": args.wait_s,
        "searches_per_round": args.searches,
        "rounds": rounds,
        "unloaded_p50_ms": round(_p50(unloaded), 2),
        "loaded_p50_ms": round(_p50(loaded), 2),
        "loaded_p95_ms": round(sorted(loaded)[int(0.95 * (len(loaded) - 1))] * 1000, 2),
        "ratio_p50": round(_p50(loaded) / _p50(unloaded), 3),
        "target_ratio": 1.5,
    }
    figures["within_target"] = figures["ratio_p50"] <= 1.5
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
