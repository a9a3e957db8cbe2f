"""CLI start-up and client-mode latency; prints one JSON object.

Figures (wall time of whole `sensorium ...` processes, median of --runs runs each, variants alternated):
- ``help_s``: `sensorium --help`; ``unknown_like_s``: `sensorium search --like <unknown id>` (budget 1 s each);
- ``text_search_s``: `sensorium search "x" --mode text` on a library of --assets ingested images (budget 1.5 s);
- client mode against a running `sensorium serve`: 20 successive CLI searches, p50, over a bare `curl` of the same
  search plus the CLI's own start-up (`sensorium --version`), p50s (budget 1.5).

Run: PYTHONPATH=. /work/tools/cpu --exclusive python bench/cli.py [--assets 1000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# OCR off: these figures are about start-up and lookups, not reading text in pictures.
ENCODER = {"SENSORIUM_ENCODER__MODEL": "tiny-clip", "SENSORIUM_ENCODER__PRETRAINED": "none", "SENSORIUM_OCR__ENABLED": "false"}


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def _medians(variants: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Run each variant ``runs`` times, alternating them; return each one's median in seconds."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, run in variants.items():
            times[name].append(run())
    return {name: round(statistics.median(values), 4) for name, values in times.items()}


def _library(env: dict[str, str], folder: Path, assets: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(assets):
        image = Image.new("RGB", (32, 24), (i % 256, (i * 7) % 256, (i * 13) % 256))
        image.putpixel((0, 0), (i >> 16, (i >> 8) & 255, i & 255))  # every file a distinct content (one asset each)
        image.save(folder / f"photo-{i:05d}.png")
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", str(folder), "--json"], env=env, cwd=REPO, capture_output=True
    )
    summary = json.loads(done.stdout)
    if summary["indexed"] != assets:
        raise RuntimeError(f"library: {summary}")


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env={**env, "SENSORIUM_AUTH__DISABLED": "true", "SENSORIUM_API__RATE_LIMIT_PER_MINUTE": "0"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/readyz"], capture_output=True)
        if probe.returncode == 0:
            return server
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("server not ready")


def main() -> None:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "api.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
        env = {**base, **ENCODER, "SENSORIUM_DATA_DIR": f"{tmp}/data", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        started = time.perf_counter()
        _library(env, Path(tmp) / "photos", args.assets)
        library_s = time.perf_counter() - started
        embedded = _medians(
            {
                "help_s": lambda: _timed([*cli, "--help"], env),
                "unknown_like_s": lambda: _timed([*cli, "search", "--like", "no-such-asset"], env),
                "text_search_s": lambda: _timed([*cli, "search", "x", "--mode", "text"], env),
                "text_search_hit_s": lambda: _timed([*cli, "search", "photo", "--mode", "text"], env),
            },
            args.runs,
        )
        server = _serve(env, args.port)
        try:
            url = f"http://127.0.0.1:{args.port}"
            body = json.dumps({"text": "photo", "limit": 11})
            curl = ["curl", "-sf", "-H", "Content-Type: application/json", "-d", body, f"{url}/v1/search"]
            remote = {**env, "SENSORIUM_SERVER_URL": url}
            _timed([*cli, "search", "photo"], remote)  # the server's first search warms its caches
            client = _medians(
                {
                    "client_search_s": lambda: _timed([*cli, "search", "photo"], remote),
                    "curl_s": lambda: _timed(curl, env),
                    "cli_startup_s": lambda: _timed([*cli, "--version"], env),
                },
                args.searches,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    baseline = client["curl_s"] + client["cli_startup_s"]
    print(
        json.dumps(
            {
                "assets": args.assets,
                "library_build_s": round(library_s, 1),
                **embedded,
                **client,
                "client_over_curl_plus_startup": round(client["client_search_s"] / baseline, 3),
                "budgets": {"help_s": 1.0, "unknown_like_s": 1.0, "text_search_s": 1.5, "client_ratio": 1.5},
            }
        )
    )


if __name__ == "__main__":
    main()
