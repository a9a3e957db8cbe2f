"""Time LocalRouter.plan over the whole router corpus (corpus and dev set) and print latency figures as JSON."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and "agent" would name this file, not the package.
sys.path[:] = [str(REPO), *(p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent)]

from agent.classifier import default_model  # noqa: E402
from agent.corpus import training_examples  # noqa: E402
from agent.router import LocalRouter  # noqa: E402

ROUNDS = 10


def load_requests() -> list[str]:
    """Return the request texts of the whole corpus."""
    return [example.request for example in training_examples()]


def time_requests(requests: list[str], rounds: int = ROUNDS) -> list[int]:
    """Return the duration in nanoseconds of every plan() call over `rounds` passes."""
    router = LocalRouter()
    durations = []
    for _ in range(rounds):
        for request in requests:
            start = time.perf_counter_ns()
            router.plan(request)
            durations.append(time.perf_counter_ns() - start)
    return durations


def summarise(durations: list[int]) -> dict[str, float]:
    """Return request count, p50, p99 and mean latency in milliseconds."""
    ordered = sorted(durations)
    p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) / 1e6, 4),
        "p99_ms": round(ordered[p99_index] / 1e6, 4),
        "per_request_ms_mean": round(statistics.fmean(ordered) / 1e6, 4),
    }


def main() -> None:
    """Run the benchmark and print its JSON summary, with the one-off training time."""
    start = time.perf_counter()
    default_model()
    training_s = time.perf_counter() - start
    requests = load_requests()
    summary = summarise(time_requests(requests))
    print(json.dumps({"corpus_requests": len(requests), "training_s": round(training_s, 3), **summary}))


if __name__ == "__main__":
    main()
