"""GET /metrics after real requests, searches, uploads and an ingest job; the values are checked against the database."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api.rest.app import create_app
from api.rest.metrics import RATE_WINDOW_S
from core.apikeys import create_key
from core.db.engine import read_session
from core.db.models import Asset, Job, Segment
from core.jobs import QUEUES, STATUSES, job_meta
from core.logs import JsonFormatter
from core.settings import IngestSettings, Settings
from tests.api.conftest import REPO, ApiServer, free_port, png_bytes
from tests.conftest import TINY_ENCODER, env_for
from tests.jobs_helpers import free_redis_db, stop_processes, wait_until
from tests.media_images import write_images

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]
REQUESTS = "sensorium_http_request_duration_seconds_count"


def scrape(client: Any) -> Samples:
    """GET /metrics without a key and return {sample name: {labels: value}}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-type"].count("charset") == 1
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value (0 when absent, as for a counter not yet incremented)."""
    return samples.get(name, {}).get(frozenset(labels.items()), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@contextmanager
def app_client(settings: Settings) -> Iterator[TestClient[Any]]:
    """Yield a test client once the app's warm-up (encoder and live index) is done."""
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.1)
        yield client


def wait_for_job(client: Any, job_id: str, auth: dict[str, str], timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll a job with the API's bounded wait until it ends; return it."""
    deadline = time.monotonic() + timeout_s
    while (job := client.get(f"/v1/jobs/{job_id}?wait=5", headers=auth).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
    return dict(job)


def jobs_in_database(settings: Settings) -> Counter[tuple[str, str]]:
    """Count jobs by (status, queue) in Python, independently of the collector's SQL."""
    with read_session(settings) as session:
        jobs = list(session.scalars(select(Job)))
    return Counter((job.status, str(job_meta(job).get("queue") or "gpu")) for job in jobs)


def test_metrics_cover_requests_searches_ingest_jobs_and_the_index(settings: Settings, tmp_path: Path) -> None:
    library = tmp_path / "library"
    write_images(library, 2, start_seed=500)
    (library / "broken.png").write_bytes(b"this is not a png" * 8)
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"allowed_roots": [library]})})
    auth = {"Authorization": f"Bearer {create_key('metrics', ['admin'], settings).secret}"}
    started = time.monotonic()
    with app_client(settings) as client:
        before = scrape(client)
        uploads = [("files", (f"u{i}.png", png_bytes(900 + i), "image/png")) for i in range(2)]
        created = client.post("/v1/assets", files=uploads, headers=auth)
        assert created.status_code == 201, created.text
        asset_id = created.json()["items"][0]["asset"]["id"]
        job = client.post("/v1/ingest", json={"paths": [str(library)]}, headers=auth)
        assert job.status_code == 202, job.text
        state = wait_for_job(client, job.json()["id"], auth)
        assert state["status"] == "succeeded", state
        again = client.post("/v1/ingest", json={"paths": [str(library)]}, headers=auth)  # already there: skipped
        assert wait_for_job(client, again.json()["id"], auth)["result"]["skipped"] == 2
        assert client.post("/v1/search", json={"text": "a photo"}, headers=auth).status_code == 200
        by_image = client.post("/v1/search", files={"image": ("q.png", png_bytes(900), "image/png")}, headers=auth)
        assert by_image.status_code == 200, by_image.text
        assert client.get(f"/v1/assets/{asset_id}", headers=auth).status_code == 200
        assert client.get("/v1/assets/" + "0" * 32, headers=auth).status_code == 404
        assert client.get("/no/such/route").status_code == 404
        after = scrape(client)
    elapsed = time.monotonic() - started

    # Requests, labelled by route template and status class, never by raw path.
    assert delta(before, after, REQUESTS, route="/v1/search", method="POST", status="2xx") == 2
    assert delta(before, after, REQUESTS, route="/v1/assets/{asset_id}", method="GET", status="2xx") == 1
    assert delta(before, after, REQUESTS, route="/v1/assets/{asset_id}", method="GET", status="4xx") == 1
    assert delta(before, after, REQUESTS, route="unmatched", method="GET", status="4xx") == 1
    assert delta(before, after, REQUESTS, route="/metrics", method="GET", status="2xx") == 1
    assert delta(before, after, REQUESTS, route="/v1/ingest", method="POST", status="2xx") == 2
    assert not any(asset_id in dict(labels)["route"] for labels in after[REQUESTS])
    # Searches by the mode they ran in: text queries as asked (hybrid by default), queries by example by vectors.
    searches = "sensorium_search_duration_seconds_count"
    assert delta(before, after, searches, mode="hybrid", query="text") == 1
    assert delta(before, after, searches, mode="vector", query="image") == 1
    assert delta(before, after, "sensorium_search_duration_seconds_sum", mode="hybrid", query="text") > 0

    # Files ingested in this process: two uploads and two library images indexed, the broken file failed (twice),
    # and the second ingest of the library skipped its two images.
    ingested = "sensorium_ingested_files_total"
    assert delta(before, after, ingested, outcome="indexed") == 4
    assert delta(before, after, ingested, outcome="failed") == 2
    assert delta(before, after, ingested, outcome="skipped") == 2

    with read_session(settings) as session:
        vectors = session.scalar(select(func.count()).select_from(Segment))
        statuses = Counter(session.scalars(select(Asset.status)))
    assert vectors and value(after, "sensorium_index_vectors") == vectors  # the searches caught the index up
    assert statuses == {"indexed": 4, "failed": 1}
    rate = "sensorium_ingest_files_per_second"
    if elapsed < RATE_WINDOW_S:  # every asset was created within the window
        assert value(after, rate, status="indexed") * RATE_WINDOW_S == pytest.approx(statuses["indexed"])
        assert value(after, rate, status="failed") * RATE_WINDOW_S == pytest.approx(statuses["failed"])

    jobs = jobs_in_database(settings)
    assert jobs[("succeeded", "ingest")] >= 1
    for status in STATUSES:
        for queue in QUEUES:
            assert value(after, "sensorium_jobs", status=status, queue=queue) == jobs[(status, queue)]
    for queue in QUEUES:
        assert value(after, "sensorium_queue_depth", queue=queue) == jobs[("queued", queue)]
    assert "sensorium_broker_queue_length" not in after  # no broker configured

    torch = sys.modules["torch"]  # the encoder imported it; /metrics never does
    gpu = {name for name in after if name.startswith("sensorium_gpu_memory_")}
    if torch.cuda.is_available():
        devices = {str(i) for i in range(torch.cuda.device_count())}
        assert {dict(labels)["device"] for labels in after["sensorium_gpu_memory_reserved_bytes"]} == devices
    else:
        assert gpu == set()


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"api": settings.api.model_copy(update={"metrics_enabled": False})})
    with TestClient(create_app(off)) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_request_id_is_bound_to_the_records_of_its_request(settings: Settings) -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("sensorium.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with TestClient(create_app(settings)) as client:
            response = client.get("/healthz", headers={"X-Request-ID": "trace-metrics-1"})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert response.headers["x-request-id"] == "trace-metrics-1"
    (line,) = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert line["request_id"] == "trace-metrics-1" and line["logger"] == "sensorium.access"
    assert json.loads(str(line["message"]))["path"] == "/healthz"


def test_served_process_exposes_metrics_openly_and_logs_json(api_server: ApiServer) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as anonymous:
        samples = scrape(anonymous)
    assert value(samples, REQUESTS, route="/readyz", method="GET", status="2xx") >= 1  # the fixture's probes
    assert "sensorium_index_vectors" in samples and "sensorium_jobs" in samples
    records = [line for line in api_server.log_lines() if "logger" in line]
    assert any(r["logger"] == "uvicorn.error" and r["message"] == "Application startup complete." for r in records)


@pytest.mark.integration
def test_worker_serves_its_metrics_and_the_api_sees_the_broker_queue(postgres_url: str, tmp_path: Path) -> None:
    import redis

    redis_db = free_redis_db()
    library = tmp_path / "library"
    images = write_images(library, 3, start_seed=700)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        broker_url=f"redis://127.0.0.1:6379/{redis_db}",
        encoder=TINY_ENCODER,
        ingest=IngestSettings(allowed_roots=[library]),
    )
    auth = {"Authorization": f"Bearer {create_key('metrics', ['admin'], settings).secret}"}
    broker = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
    port = free_port()
    env = env_for(settings) | {
        "SENSORIUM_BROKER_URL": str(settings.broker_url),
        "SENSORIUM_INGEST__ALLOWED_ROOTS": json.dumps([str(library)]),
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        with app_client(settings) as client:
            job_id = client.post("/v1/ingest", json={"paths": [str(library)]}, headers=auth).json()["id"]
            waiting = scrape(client)
            assert broker.llen("ingest") >= 1  # no worker yet: the message waits in the broker
            assert value(waiting, "sensorium_broker_queue_length", queue="ingest") == broker.llen("ingest")
            assert (
                value(waiting, "sensorium_queue_depth", queue="ingest")
                == jobs_in_database(settings)[("queued", "ingest")]
            )

            with log.open("wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "worker", "--queues", "ingest", "--metrics-port", str(port)],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            assert wait_for_job(client, job_id, auth)["status"] == "succeeded", log.read_text()
            done = scrape(client)
        assert value(done, "sensorium_broker_queue_length", queue="ingest") == broker.llen("ingest") == 0
        assert (
            value(done, "sensorium_jobs", status="succeeded", queue="ingest")
            == jobs_in_database(settings)[("succeeded", "ingest")]
        )
        assert value(done, "sensorium_ingested_files_total", outcome="indexed") == value(
            waiting, "sensorium_ingested_files_total", outcome="indexed"
        )  # the worker, not this process, wrote the files

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as scraper:
            from_worker = scrape(scraper)
        assert value(from_worker, "sensorium_ingested_files_total", outcome="indexed") == len(images)
        assert "sensorium_jobs" not in from_worker  # database gauges come from the API only
        records = wait_until(
            lambda: [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")],
            30,
            "JSON lines in the worker log",
        )
        assert any(r["message"].endswith(" ready.") and r["logger"].startswith("celery") for r in records)
        # The chunk's attempt was timed, and its log lines carry the chunk's job id (core/logs.py bind_job).
        with read_session(settings) as session:
            chunks = list(session.scalars(select(Job).where(Job.parent_id == job_id)))
        assert len(chunks) == 1
        assert value(
            from_worker, "sensorium_job_duration_seconds_count", kind="ingest_chunk", status="succeeded"
        ) == len(chunks)
        assert {c.id for c in chunks} <= {r.get("job_id") for r in records}
    finally:
        stop_processes([worker] if worker is not None else [])
        broker.flushdb()
        broker.close()
        if os.environ.get("SENSORIUM_TEST_KEEP_LOGS") and log.exists():
            print(log.read_text())


def test_an_unreachable_broker_leaves_its_gauge_out(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(nowhere)) as client:
        samples = scrape(client)
    assert "sensorium_broker_queue_length" not in samples and "sensorium_jobs" in samples
