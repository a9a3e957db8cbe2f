"""Per-key request rate limits: a token bucket per API key, refilled continuously (one process's view)."""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    """Allows ``per_minute`` requests a minute per key with bursts up to the same number; 0 disables it."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``; return 0 when allowed, else the seconds until a token is available."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        """Return a Retry-After value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait_s)))
