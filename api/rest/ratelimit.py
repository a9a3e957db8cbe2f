"""Per-key request rate limits: a token bucket per API key, refilled continuously.

With a Redis broker (``broker_url`` redis://) the buckets live in Redis, updated by one atomic script on Redis's
clock, so every API replica draws from the same bucket and N replicas allow the limit once in total. Without one
(or while Redis does not answer) each process keeps its own buckets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

KEY_PREFIX = "sensorium:ratelimit:"
_REDIS_TIMEOUT_S = 0.25
_REDIS_BACKOFF_S = 5.0  # after Redis fails, count locally this long before asking it again

# KEYS[1]: the bucket; ARGV: capacity, refill per second. Returns the seconds to wait (0: allowed), as a string.
_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1]) or capacity
local at = tonumber(stored[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RateLimiter:
    """Allows ``per_minute`` requests a minute per key with bursts up to the same number; 0 disables it.

    ``redis_url`` shares the buckets between processes through Redis (see the module's docstring).
    """

    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._redis: Any = None
        self._script: Any = None
        self._redis_down_until = 0.0
        if redis_url and redis_url.startswith(("redis://", "rediss://")) and per_minute > 0:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
            )
            self._script = self._redis.register_script(_TOKEN_BUCKET)

    @property
    def shared(self) -> bool:
        """Return True when the buckets live in Redis."""
        return self._redis is not None

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``; return 0 when allowed, else the seconds until a token is available."""
        if self.per_minute <= 0:
            return 0.0
        if self._redis is not None and now is None and time.monotonic() >= self._redis_down_until:
            import redis

            try:
                return float(self._script(keys=[KEY_PREFIX + key], args=[self.per_minute, self._rate]))
            except redis.RedisError as exc:
                self._redis_down_until = time.monotonic() + _REDIS_BACKOFF_S
                logger.warning("rate limits: Redis unavailable (%s); counting in this process for now", exc)
        return self._acquire_here(key, time.monotonic() if now is None else now)

    def _acquire_here(self, key: str, now: float) -> float:
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
