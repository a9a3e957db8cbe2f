"""GET /metrics: this process's Prometheus metrics plus library, job and broker gauges read at scrape time.

Open like /healthz (``api.metrics_enabled`` turns it off). A scrape costs two grouped SQL queries and, with a
Redis broker, one pipelined LLEN; whatever cannot be read is left out and the scrape still succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from api.rest.state import ApiState

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("sensorium.api")

RATE_WINDOW_S = 60
BROKER_TIMEOUT_S = 0.5


def metrics_registry(state: ApiState) -> CollectorRegistry:
    """Return the registry /metrics serves: the process-wide metrics and this app's scrape-time gauges."""
    registry = CollectorRegistry()
    registry.register(_Forward(REGISTRY))
    registry.register(LibraryCollector(state))
    return registry


@get("/metrics", sync_to_thread=True, include_in_schema=False)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Return the metrics in the text format the scraper asks for (Prometheus text or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    # As a header: given as media_type, Litestar would append a second charset to the text/plain type.
    return Response(encode(request.app.state.metrics), headers={"content-type": content_type})


class _Forward(Collector):
    """Yield another registry's metrics, so one exposition holds both."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class LibraryCollector(Collector):
    """Gauges computed at scrape time: jobs by status and queue, ingest rate, index size, broker queues, waits."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self._redis: Redis | None = None

    def describe(self) -> list[Metric]:
        """Return nothing: which gauges exist is only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every gauge that can be read now."""
        from core.status import StatusUnavailable

        try:
            yield from self._from_database()
        except StatusUnavailable as exc:
            log.warning("metrics: database gauges left out: %s", exc)
        yield from self._index()
        yield from self._broker()
        yield GaugeMetricFamily(
            "sensorium_waits_in_progress",
            "Requests of this process waiting (`wait=`) for a job to end.",
            value=self.state.waiter.in_progress(),
        )

    def _from_database(self) -> Iterator[Metric]:
        from core.jobs import QUEUES, STATUSES
        from core.status import assets_created_since, job_counts

        jobs = job_counts(self.state.settings)
        created = assets_created_since(self.state.settings, RATE_WINDOW_S)
        counts = {(status, name): 0 for status in STATUSES for name in QUEUES}
        for status, name, count in jobs:
            key = (status, name or "gpu")  # the runner's default for a job without a queue
            counts[key] = counts.get(key, 0) + count
        by_status = GaugeMetricFamily(
            "sensorium_jobs", "Jobs in the database by status and queue (every process).", labels=["status", "queue"]
        )
        depth = GaugeMetricFamily(
            "sensorium_queue_depth",
            "Queued jobs per queue in the database (including retries waiting).",
            labels=["queue"],
        )
        for (status, name), count in sorted(counts.items()):
            by_status.add_metric([status, name], count)
            if status == "queued":
                depth.add_metric([name], count)
        rate = GaugeMetricFamily(
            "sensorium_ingest_files_per_second",
            f"Assets created by any process over the last {RATE_WINDOW_S} s, per second, by status.",
            labels=["status"],
        )
        per_status = {"indexed": 0, "failed": 0} | created
        for status, count in sorted(per_status.items()):
            rate.add_metric([status], count / RATE_WINDOW_S)
        yield from (by_status, depth, rate)

    def _index(self) -> Iterator[Metric]:
        # Only once the warm-up loaded it: a scrape must never load an index.
        if not self.state.warmed.is_set() or self.state.warm_error:
            return
        from index.service import get_live_index

        yield GaugeMetricFamily(
            "sensorium_index_vectors",
            "Vectors in this process's live index (as of its last catch-up with the change log).",
            value=len(get_live_index(self.state.settings)),
        )

    def _broker(self) -> Iterator[Metric]:
        url = self.state.settings.broker_url
        if not url or not url.startswith(("redis://", "rediss://")):
            return
        from redis import Redis, RedisError

        from core.jobs import QUEUES

        if self._redis is None:
            self._redis = Redis.from_url(url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S)
        pipeline = self._redis.pipeline(transaction=False)
        for name in QUEUES:
            pipeline.llen(name)  # Celery's Redis transport keeps a queue's messages in a list of that name
        try:
            lengths = pipeline.execute()
        except RedisError as exc:
            log.debug("metrics: broker queue lengths left out: %s", exc)
            return
        family = GaugeMetricFamily(
            "sensorium_broker_queue_length", "Messages waiting in the broker per Celery queue.", labels=["queue"]
        )
        for name, length in zip(QUEUES, lengths, strict=True):
            family.add_metric([name], length)
        yield family
