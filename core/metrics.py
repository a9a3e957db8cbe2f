"""This process's Prometheus metrics: requests, searches, ingested files, job attempts, and GPU memory when in use.

Each process (API replica, worker) counts for itself in prometheus_client's default registry; Prometheus scrapes
every one. Workers serve it with ``sensorium worker --metrics-port N``, the API at ``/metrics``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram, Metric, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # no *_created series: twice the series for a timestamp dashboards rarely use

UNMATCHED = "unmatched"  # the route label of requests no route matched (404, 405)
INGEST_OUTCOMES = ("indexed", "skipped", "failed")
_JOB_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, float("inf"))

REQUEST_SECONDS = Histogram(
    "sensorium_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status class.",
    ["route", "method", "status"],
)
SEARCH_SECONDS = Histogram(
    "sensorium_search_duration_seconds",
    "Time one search took in this process, by mode (vector, text, hybrid) and query (text, image, audio, asset).",
    ["mode", "query"],
)
INGESTED_FILES = Counter(
    "sensorium_ingested_files",
    "Files ingest handled in this process, by outcome: indexed, skipped (already indexed) or failed.",
    ["outcome"],
)
JOB_SECONDS = Histogram(
    "sensorium_job_duration_seconds",
    "Time one job attempt ran in this process, by kind and the status it left the job in (lost: no longer its own).",
    ["kind", "status"],
    buckets=_JOB_BUCKETS,
)
OCR_SECONDS = Histogram(
    "sensorium_ocr_seconds_per_picture",
    "Time OCR (text detection and recognition) took per image or scene picture read in this process.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf")),
)
OCR_REUSED = Counter(
    "sensorium_ocr_reused_pictures",
    "Scene pictures whose text was reused from the scene before (nearly the same frame), skipping OCR.",
)
for _outcome in INGEST_OUTCOMES:
    INGESTED_FILES.labels(_outcome)  # exported at 0 from the start, so rate() works from the first file


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """Record one HTTP request under its route template (``unmatched`` when none)."""
    REQUEST_SECONDS.labels(route or UNMATCHED, method, f"{status // 100}xx").observe(seconds)


def observe_search(mode: str, query: str, seconds: float) -> None:
    """Record one search."""
    SEARCH_SECONDS.labels(mode, query).observe(seconds)


def count_ingested(outcomes: Iterable[str]) -> None:
    """Count committed files by outcome (``indexed``, ``skipped`` or ``failed``)."""
    for outcome in outcomes:
        INGESTED_FILES.labels(outcome).inc()


def observe_ocr(seconds: float | None) -> None:
    """Record the OCR time of one picture, or (None) a picture whose text was reused from the one before."""
    if seconds is None:
        OCR_REUSED.inc()
    else:
        OCR_SECONDS.observe(seconds)


def observe_job(kind: str, status: str | None, seconds: float) -> None:
    """Record one job attempt and the status it left the job in (None: it lost the job, ``lost``)."""
    JOB_SECONDS.labels(kind, status or "lost").observe(seconds)


class GpuMemoryCollector(Collector):
    """CUDA memory per device, only in processes that already imported torch and have CUDA."""

    def describe(self) -> list[Metric]:
        """Return nothing: what exists is only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield allocated and reserved bytes per device (nothing without torch or CUDA)."""
        torch = sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None)  # None while torch is still being imported
        if cuda is None or not cuda.is_available():
            return
        allocated = GaugeMetricFamily(
            "sensorium_gpu_memory_allocated_bytes", "GPU memory held by tensors, per device.", labels=["device"]
        )
        reserved = GaugeMetricFamily(
            "sensorium_gpu_memory_reserved_bytes", "GPU memory held by torch's caching allocator.", labels=["device"]
        )
        for device in range(cuda.device_count()):
            # Both read allocator counters (0 before CUDA is initialised); neither initialises CUDA.
            allocated.add_metric([str(device)], cuda.memory_allocated(device))
            reserved.add_metric([str(device)], cuda.memory_reserved(device))
        yield allocated
        yield reserved


REGISTRY.register(GpuMemoryCollector())


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Serve this process's metrics over HTTP at ``addr:port`` from a daemon thread (for job workers)."""
    start_http_server(port, addr)
