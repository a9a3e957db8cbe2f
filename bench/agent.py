"""Time RuleRouter.plan over the agent dev set and print latency figures as JSON."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.router import RuleRouter  # noqa: E402

DEV_SET = REPO.parent / "shared/eval/agent-dev-set.jsonl"
ROUNDS = 50


def load_requests(path: Path = DEV_SET) -> list[str]:
    """Return the request texts of the dev set."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["request"] for line in lines if line.strip()]


def time_requests(requests: list[str], rounds: int = ROUNDS) -> list[int]:
    """Return the duration in nanoseconds of every plan() call over `rounds` passes."""
    router = RuleRouter()
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
    """Run the benchmark and print its JSON summary."""
    print(json.dumps(summarise(time_requests(load_requests()))))


if __name__ == "__main__":
    main()
