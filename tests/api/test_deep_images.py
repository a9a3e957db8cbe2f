"""16-bit images against a real server: bounded memory under concurrent searches, still searchable and ingestible."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.api.conftest import ApiServer
from tests.api.test_flows import upload, wait_for_job
from tests.media_deep_images import gray16_png, gray16_tiff, rgb16_png

RSS_LIMIT = 3 * 1024**3


class PeakRss:
    """Samples a process's resident memory (with its children) every few milliseconds; ``peak`` is the highest."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                total = self.process.memory_info().rss + sum(
                    child.memory_info().rss for child in self.process.children(recursive=True)
                )
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_ten_concurrent_deep_searches_keep_the_server_under_3_gb(api_server: ApiServer) -> None:
    query = gray16_png(8000, 8000)  # about 0.2 MB on disk, 128 MB decoded
    assert len(query) < 1024**2

    def search(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/search", files={"image": ("deep.png", query, "image/png")}, data={"limit": "3"})

    before = psutil.Process(api_server.process.pid).memory_info().rss
    with (
        api_server.client("search", timeout=600) as client,
        PeakRss(api_server.process.pid) as rss,
        ThreadPoolExecutor(10) as pool,
    ):
        answers = list(pool.map(lambda _: search(client), range(10)))
    for answer in answers:
        refused = 400 <= answer.status_code < 500 and "MAX_DECODED_BYTES" in answer.text
        assert answer.status_code == 200 or refused, answer.text
    print(f"server RSS before {before / 1024**3:.2f} GB, peak {rss.peak / 1024**3:.2f} GB")
    assert 0 < rss.peak < RSS_LIMIT, f"server peak RSS {rss.peak / 1024**3:.2f} GB"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("deep-4000x3000.png", lambda seed: rgb16_png(4000, 3000, seed=5 + seed)),
        ("deep.tiff", lambda seed: gray16_tiff(640, 480, seed=seed)),
    ],
    ids=["rgb16-png-4000x3000", "gray16-tiff"],
)
def test_sixteen_bit_images_upload_ingest_and_search(api_server: ApiServer, name: str, make: object) -> None:
    data = make(0)  # type: ignore[operator]
    collection = f"deep-{uuid.uuid4().hex[:8]}"
    with api_server.client("ingest") as ingest, api_server.client("search") as search:
        created = upload(ingest, [(name, data)], collection)
        assert created.status_code == 201, created.text
        uploaded = created.json()["items"][0]["asset"]
        assert (uploaded["width"], uploaded["height"]) == ((4000, 3000) if name.endswith(".png") else (640, 480))

        found = search.post("/v1/search", files={"image": (name, data)}, data={"collection": collection})
        assert found.status_code == 200, found.text
        best = found.json()["results"][0]
        assert best["asset_id"] == uploaded["id"] and best["score"] > 0.99

    # Server-side ingest of the same kind of file (the ingest pipeline's own decode path). Its content differs from
    # the upload's: one asset per content, so the uploaded bytes would be skipped before any decode.
    served = make(1)  # type: ignore[operator]
    folder = api_server.library / collection
    folder.mkdir()
    (folder / f"served-{name}").write_bytes(served)
    server_collection = f"{collection}-server"
    with api_server.client("admin") as admin:
        job = admin.post("/v1/ingest", json={"paths": [str(folder)], "collection": server_collection})
        assert job.status_code == 202, job.text
        finished = wait_for_job(admin, job.json()["id"])
        assert finished["status"] == "succeeded", finished
        assert (finished["result"]["indexed"], finished["result"]["failed"]) == (1, 0), finished["result"]
        found = admin.post("/v1/search", files={"image": (name, served)}, data={"collection": server_collection})
        assert found.status_code == 200, found.text
        best = found.json()["results"][0]
        assert best["name"] == f"served-{name}" and best["score"] > 0.99, best
