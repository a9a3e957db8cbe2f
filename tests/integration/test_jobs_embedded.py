"""Jobs in embedded mode (no broker): generation end to end, cancel, queue bound, leases and retries, callbacks,
and bad input that must never create a job."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from core.db.engine import read_session, write_session
from core.db.models import Asset, Job, utcnow
from core.jobs import (
    IdempotencyConflict,
    JobRequestError,
    QueueFull,
    cancel,
    get_job,
    job_to_dict,
    start_embedded_executor,
    stop_executors,
    wait,
)
from core.outbox import wait_for_deliveries
from core.settings import JobSettings, Settings
from generators.params import InvalidGenerationParams
from generators.service import store_init_image, submit_generation
from index.search import SearchRequest, search
from tests.jobs_helpers import (
    generated_assets,
    job_count,
    link_tiny_model,
    shared_tiny_model,
    wait_for_status,
    wait_until,
)
from tests.media_images import distinct_image

TINY = "tiny-random"
SECRET = "test-callback-secret"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded here: on a shared 2-core machine, OpenMP threads spinning against each other
    make the tiny pipeline 50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the tiny pipeline once for the test session."""
    return shared_tiny_model(tmp_path_factory.getbasetemp())


def _with_jobs(settings: Settings, **jobs: Any) -> Settings:
    return settings.model_copy(update={"jobs": JobSettings(callback_secret=SECRET, **jobs)})


@pytest.fixture
def embedded(settings: Settings, tiny_models: Path) -> Iterator[Settings]:
    """Embedded-mode settings (SQLite and PostgreSQL) with the tiny pipeline in place; executors stop afterwards."""
    link_tiny_model(tiny_models, settings.data_dir)
    yield _with_jobs(settings)
    stop_executors()


@pytest.fixture
def sqlite_embedded(tmp_path: Path, tiny_models: Path) -> Iterator[Settings]:
    """Embedded mode on SQLite only, for tests whose subject is not the database."""
    from tests.conftest import TINY_ENCODER

    settings = Settings(data_dir=tmp_path / "data", encoder=TINY_ENCODER)
    link_tiny_model(tiny_models, settings.data_dir)
    yield _with_jobs(settings)
    stop_executors()
    from core.db.engine import dispose_engines
    from index.service import forget_live_indexes

    forget_live_indexes()
    dispose_engines()


def _png_of(asset_id: str, settings: Settings) -> bytes:
    with read_session(settings) as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.blob_key
    from core.blobs import BlobStore

    return BlobStore(settings.resolved_data_dir()).path(asset.blob_key).read_bytes()


def _steps_done(job_id: str, steps: int, settings: Settings) -> int:
    job = get_job(job_id, settings)
    assert job is not None
    return round(job.progress * steps)


def test_generate_job_stores_indexed_reproducible_outputs(embedded: Settings) -> None:
    job = submit_generation({"generator": TINY, "prompt": "a red cube", "n": 2, "seed": 11}, settings=embedded)
    done = wait(job.id, 120, embedded)
    data = job_to_dict(done)
    assert data["status"] == "succeeded", data["error"]
    assert (data["progress"], data["attempts"], data["queue"]) == (1.0, 1, "gpu")
    assert data["result"]["seeds"] == [11, 12] and len(set(data["result"]["asset_ids"])) == 2
    assert data["params"]["seeds"] == [11, 12] and "_job" not in data["params"]

    for index, asset_id in enumerate(data["result"]["asset_ids"]):
        with read_session(embedded) as session:
            asset = session.get(Asset, asset_id)
            assert asset is not None
        assert (asset.source, asset.status, asset.kind, asset.name) == (
            "generated",
            "indexed",
            "image",
            f"a-red-cube-{job.id[:8]}-{index}.png",  # named from the prompt; the job id is in the metadata
        )
        assert asset.meta["job_id"] == job.id and asset.meta["seed"] == 11 + index
        assert asset.meta["generator"] == TINY and asset.meta["prompt"] == "a red cube" and asset.meta["n"] == 2
        top = search(SearchRequest(image=_png_of(asset_id, embedded), limit=1), embedded)[0]
        assert top.asset_id == asset_id and top.score is not None and top.score > 0.99

    # Same seed and parameters: the same pixels, so the same (deduplicated) asset.
    again = wait(
        submit_generation({"generator": TINY, "prompt": "a red cube", "seed": 12}, settings=embedded).id, 60, embedded
    )
    assert again.status == "succeeded" and again.result["asset_ids"] == [data["result"]["asset_ids"][1]]
    assert len(generated_assets(embedded)) == 2

    # Idempotency-Key: the same request returns the same job; another request with that key is refused.
    body = {"generator": TINY, "prompt": "a blue cube"}
    first = submit_generation(body, idempotency_key="k-1", owner_key_id="owner-a", settings=embedded)
    assert submit_generation(body, idempotency_key="k-1", owner_key_id="owner-a", settings=embedded).id == first.id
    with pytest.raises(IdempotencyConflict):
        submit_generation({**body, "n": 2}, idempotency_key="k-1", owner_key_id="owner-a", settings=embedded)
    other_owner = submit_generation(body, idempotency_key="k-1", owner_key_id="owner-b", settings=embedded)
    assert other_owner.id != first.id
    assert wait(first.id, 60, embedded).status == "succeeded"
    assert wait(other_owner.id, 60, embedded).status == "succeeded"


def test_cancel_queued_and_running_jobs_and_the_queue_bound(sqlite_embedded: Settings) -> None:
    settings = _with_jobs(sqlite_embedded, max_queue_depth=1, embedded_workers=1)
    steps = 50
    long = {"generator": TINY, "prompt": "slow", "steps": steps, "seed": 1}
    running = submit_generation(long, settings=settings)
    wait_until(lambda: _steps_done(running.id, steps, settings) >= 2, what="the first job's second step")
    queued = submit_generation({**long, "seed": 2}, settings=settings)
    with pytest.raises(QueueFull) as full:
        submit_generation({**long, "seed": 3}, settings=settings)
    assert full.value.retry_after_s >= 1 and job_count(settings) == 2

    canceled_queued = cancel(queued.id, settings)
    assert canceled_queued.status == "canceled" and canceled_queued.attempts == 0

    cancel(running.id, settings)
    steps_at_cancel = _steps_done(running.id, steps, settings)
    stopped = wait(running.id, 60, settings)
    assert stopped.status == "canceled", stopped.error
    match = re.search(r"after (\d+) steps", stopped.error or "")
    assert match is not None, stopped.error
    # The flag is read after every step: at most the step already under way finishes.
    assert int(match.group(1)) <= steps_at_cancel + 1 < steps
    assert get_job(queued.id, settings).attempts == 0  # type: ignore[union-attr]
    assert generated_assets(settings) == []


def test_dead_worker_jobs_are_resumed_requeued_or_failed(sqlite_embedded: Settings) -> None:
    settings = _with_jobs(sqlite_embedded, lease_s=3.0, heartbeat_s=0.2, max_attempts=5)
    finished = wait(
        submit_generation({"generator": TINY, "prompt": "x", "seed": 5}, settings=settings).id, 60, settings
    )
    asset_ids, attempts = finished.result["asset_ids"], finished.attempts
    assert finished.status == "succeeded" and len(asset_ids) == 1
    stop_executors()

    # The state a crash leaves: one job stored its output but died before recording it, one was still queued
    # in a dead process's memory, and one had already used up its attempts.
    expired = utcnow() - timedelta(seconds=5)
    with write_session(settings) as session:
        session.execute(
            update(Job)
            .where(Job.id == finished.id)
            .values(status="running", result={}, lease_expires_at=expired, finished_at=None, progress=0.5)
        )
        queued = Job(kind="generate", status="queued", params={**finished.params, "seeds": [6]})
        exhausted = Job(kind="generate", status="running", params=finished.params, attempts=5, lease_expires_at=expired)
        session.add_all([queued, exhausted])
    start_embedded_executor(settings)

    retried = wait_for_status(finished.id, "succeeded", settings)
    assert retried.attempts == attempts + 1 and retried.result["asset_ids"] == asset_ids
    resumed = wait(queued.id, 60, settings)
    assert resumed.status == "succeeded" and resumed.attempts == 1
    failed = wait_for_status(exhausted.id, "failed", settings)
    assert "worker lost" in (failed.error or "") and "gave up after 5 attempts" in (failed.error or "")
    assert sorted(a.id for a in generated_assets(settings)) == sorted(asset_ids + resumed.result["asset_ids"])


def test_image_to_image_from_an_uploaded_init_image(sqlite_embedded: Settings) -> None:
    buffer = io.BytesIO()
    distinct_image(4).save(buffer, format="PNG")
    init_id = store_init_image(buffer.getvalue(), "init.png", sqlite_embedded)
    body = {"generator": "tiny-random-img2img", "prompt": "x", "init_image": init_id, "steps": 4, "seed": 1}
    job = wait(submit_generation(body, settings=sqlite_embedded).id, 60, sqlite_embedded)
    assert job.status == "succeeded", job.error
    (asset,) = generated_assets(sqlite_embedded)
    assert (
        asset.meta["init_image"] == init_id
        and asset.meta["strength"] == 0.5
        and (asset.width, asset.height) == (64, 64)
    )


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        # The first delivery fails, so the retry with backoff is exercised.
        self.send_response(500 if len(type(self).calls) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_callback_is_signed_and_retried(sqlite_embedded: Settings) -> None:
    settings = _with_jobs(sqlite_embedded, allow_private_callbacks=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = submit_generation({"generator": TINY, "prompt": "x", "callback_url": url}, settings=settings)
        assert wait(job.id, 60, settings).status == "succeeded"
        assert job_to_dict(job)["callback_url"] == url
        # wait() sees the committed status, which the runner writes just before it starts the delivery.
        deadline = time.monotonic() + 30
        while len(_Receiver.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wait_for_deliveries(30)
    finally:
        server.shutdown()
    assert len(_Receiver.calls) == 2
    headers, body = _Receiver.calls[-1]
    expected = hmac.new(SECRET.encode(), headers[TIMESTAMP_HEADER].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["id"] == job.id and payload["status"] == "succeeded" and payload["result"]["asset_ids"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"width": 100}, "width"),
        ({"width": 4096, "height": 4096}, "width"),
        ({"steps": 0}, "steps"),
        ({"steps": 10000}, "steps"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"generator": "no-such-model"}, "generator"),
        ({"scheduler": "warp-drive"}, "scheduler"),
        ({"generator": "tiny-random-img2img", "init_image": "no-such-asset"}, "init_image"),
    ],
)
def test_bad_requests_create_no_job(sqlite_embedded: Settings, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidGenerationParams) as info:
        submit_generation({"generator": TINY, "prompt": "a cube", **body}, settings=sqlite_embedded)
    assert info.value.field == field and info.value.reason
    assert job_count(sqlite_embedded) == 0


def test_corrupt_init_images_and_bad_callbacks_create_nothing(sqlite_embedded: Settings, tmp_path: Path) -> None:
    for data in (b"\x89PNG\r\n\x1a\n truncated", b"not an image at all", b""):
        with pytest.raises(InvalidGenerationParams) as info:
            store_init_image(data, "init.png", sqlite_embedded)
        assert info.value.field == "init_image"
    body = {"generator": TINY, "prompt": "a cube"}
    for url in (
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http://",
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ):
        with pytest.raises(JobRequestError):
            submit_generation({**body, "callback_url": url}, settings=sqlite_embedded)
    unsigned = sqlite_embedded.model_copy(update={"jobs": JobSettings(callback_secret=None)})
    with pytest.raises(JobRequestError, match="CALLBACK_SECRET"):
        submit_generation({**body, "callback_url": "https://93.184.215.14/hook"}, settings=unsigned)
    assert job_count(sqlite_embedded) == 0
    with read_session(sqlite_embedded) as session:
        assert session.scalars(select(Asset)).first() is None
    blobs = sqlite_embedded.data_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
