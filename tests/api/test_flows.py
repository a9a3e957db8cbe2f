"""The main flows over HTTP against a real server process: upload, search, content with Range, delete, ingest jobs."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from api.rest.signing import UrlSigner
from tests.api.conftest import MAX_UPLOAD_BYTES, SIGNING_KEY, ApiServer, png_bytes
from tests.media_factory import make_tone_wav
from tests.media_images import write_images

PROBLEM = "application/problem+json"


def upload(client: httpx.Client, files: list[tuple[str, bytes]], collection: str, *tags: str) -> httpx.Response:
    """POST /v1/assets with these (name, bytes) files."""
    return client.post(
        "/v1/assets",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data={"collection": collection, "tags": list(tags)},
    )


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll a job with the API's bounded wait until it ends."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
        if job["status"] in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            return dict(job)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Assert a problem+json response with this status and type; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["type"] == f"urn:sensorium:problem:{slug}", body
    assert body["status"] == status and body["request_id"] == response.headers["x-request-id"]
    return body


def test_upload_search_fetch_and_delete(api_server: ApiServer) -> None:
    collection = f"c-{uuid.uuid4().hex[:8]}"
    images = [(f"photo-{i}.png", png_bytes(100 + i)) for i in range(3)]
    with api_server.client("ingest") as ingest, api_server.client("search") as search, api_server.client(None) as anon:
        created = upload(ingest, images, collection, "holiday")
        assert created.status_code == 201, created.text
        items = created.json()["items"]
        assert [i["status"] for i in items] == ["created"] * 3 and created.json()["job"] is None
        ids = [i["asset"]["id"] for i in items]
        assert items[0]["asset"]["tags"] == ["holiday"] and items[0]["asset"]["collection"] == collection

        again = upload(ingest, images[:1], collection)
        assert again.status_code == 201
        assert again.json()["items"][0]["status"] == "existing" and again.json()["items"][0]["asset"]["id"] == ids[0]

        by_text = search.post("/v1/search", json={"text": "a photo", "collection": collection, "limit": 10})
        assert by_text.status_code == 200, by_text.text
        assert {r["asset_id"] for r in by_text.json()["results"]} == set(ids)

        by_image = search.post(
            "/v1/search", files={"image": ("q.png", images[1][1], "image/png")}, data={"collection": collection}
        )
        assert by_image.status_code == 200, by_image.text
        best = by_image.json()["results"][0]
        assert best["asset_id"] == ids[1] and best["score"] > 0.99

        by_asset = search.post("/v1/search", json={"asset_id": ids[2], "collection": collection})
        assert by_asset.status_code == 200
        assert {r["asset_id"] for r in by_asset.json()["results"]} == set(ids[:2])  # never itself

        # Signed URLs work without a key; Range gives exactly the bytes asked for.
        content_url = best["content_url"]
        data = images[1][1]
        ranged = anon.get(content_url, headers={"Range": "bytes=10-29"})
        assert ranged.status_code == 206 and ranged.content == data[10:30]
        assert ranged.headers["content-range"] == f"bytes 10-29/{len(data)}"
        assert ranged.headers["content-type"] == "image/png" and ranged.headers["accept-ranges"] == "bytes"
        assert anon.get(content_url, headers={"Range": "bytes=-7"}).content == data[-7:]
        problem(anon.get(content_url, headers={"Range": f"bytes={len(data)}-"}), 416, "range-not-satisfiable")
        full = search.get(f"/v1/assets/{ids[1]}/content")
        assert full.status_code == 200 and full.content == data
        assert full.headers["etag"] == f'"{items[1]["asset"]["sha256"]}"'
        thumb = anon.get(best["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256

        tampered = content_url.replace(f"/{ids[1]}/", f"/{ids[0]}/")
        problem(anon.get(tampered), 403, "signature-invalid")
        expired = UrlSigner(SIGNING_KEY.encode(), 60).sign(f"/v1/assets/{ids[1]}/content", now=time.time() - 3600)
        problem(anon.get(expired), 403, "signature-expired")
        problem(anon.get(f"/v1/assets/{ids[1]}/content"), 401, "unauthorized")

        assert ingest.delete(f"/v1/assets/{ids[0]}").status_code == 204
        problem(search.get(f"/v1/assets/{ids[0]}"), 404, "not-found")
        problem(ingest.delete(f"/v1/assets/{ids[0]}"), 404, "not-found")
        problem(anon.get(items[0]["asset"]["content_url"]), 404, "not-found")
        after = search.post("/v1/search", json={"text": "a photo", "collection": collection}).json()["results"]
        assert {r["asset_id"] for r in after} == set(ids[1:])


def test_list_assets_pages_with_a_cursor(api_server: ApiServer) -> None:
    collection = f"c-{uuid.uuid4().hex[:8]}"
    with api_server.client("ingest") as ingest, api_server.client("search") as search:
        for i in range(5):  # one by one, so every asset has its own creation time
            assert upload(ingest, [(f"p{i}.png", png_bytes(300 + i))], collection).status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"collection": collection, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = search.get("/v1/assets", params=params).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5
        by_offset = search.get("/v1/assets", params={"collection": collection, "limit": 2, "offset": 2}).json()
        assert [a["id"] for a in by_offset["items"]] == seen[2:4]
        problem(search.get("/v1/assets", params={"cursor": "garbage!"}), 422, "validation-error")


def test_server_side_ingest_job(api_server: ApiServer) -> None:
    folder = api_server.library / uuid.uuid4().hex[:8]
    write_images(folder / "a", 3, start_seed=500)
    write_images(folder / "b", 2, start_seed=600)
    collection = f"c-{folder.name}"
    with api_server.client("ingest") as ingest, api_server.client("search") as search:
        submitted = ingest.post("/v1/ingest", json={"paths": [str(folder / "a")], "collection": collection})
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["location"] == f"/v1/jobs/{submitted.json()['id']}"
        job = wait_for_job(ingest, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["indexed"] == 3 and job["progress"] == 1.0

        manifest = folder / "manifest.jsonl"
        lines = [{"path": f"b/{p.name}", "tags": ["from-manifest"]} for p in sorted((folder / "b").iterdir())]
        manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        by_manifest = ingest.post("/v1/ingest", json={"manifest": str(manifest), "collection": collection})
        assert by_manifest.status_code == 202
        assert wait_for_job(ingest, by_manifest.json()["id"])["result"]["indexed"] == 2

        listed = search.get("/v1/assets", params={"collection": collection, "tag": "from-manifest"}).json()
        assert len(listed["items"]) == 2 and all(a["source"] == "ingested" for a in listed["items"])
        # The search key sees only its own jobs: the ingest key's job is hidden from it.
        problem(search.get(f"/v1/jobs/{submitted.json()['id']}"), 404, "not-found")

        problem(ingest.post("/v1/ingest", json={"paths": ["/etc"]}), 403, "path-not-allowed")
        escape = ingest.post("/v1/ingest", json={"paths": [f"{api_server.library}/../../etc"]})
        problem(escape, 403, "path-not-allowed")
        missing = problem(ingest.post("/v1/ingest", json={"paths": [str(folder / "nope")]}), 422, "validation-error")
        assert missing["errors"][0]["field"] == "paths.0"
        relative = problem(ingest.post("/v1/ingest", json={"paths": ["a"]}), 422, "validation-error")
        assert relative["errors"][0]["field"] == "paths.0"


def test_audio_upload_is_indexed_by_a_job(api_server: ApiServer, tmp_path: Path) -> None:
    wav = make_tone_wav(tmp_path / "tone.wav", 3.0).read_bytes()
    with api_server.client("ingest") as ingest:
        response = upload(ingest, [("tone.wav", wav), ("pic.png", png_bytes(900))], f"c-{uuid.uuid4().hex[:8]}")
        assert response.status_code == 202, response.text
        body = response.json()
        assert [i["status"] for i in body["items"]] == ["queued", "created"]
        job = wait_for_job(ingest, body["job"]["id"])
        assert job["status"] == "succeeded" and job["result"]["indexed"] == 1, job
    with api_server.client("admin") as admin:
        asset = admin.get(f"/v1/assets/{job['result']['asset_ids'][0]}")
        assert asset.status_code == 200 and asset.json()["kind"] == "audio" and asset.json()["name"] == "tone.wav"
    assert not any((api_server.settings.data_dir / "uploads").rglob("*.wav"))  # the staged copy is gone


def _multipart(name: str, size: int, chunk: int, pulled: list[int]) -> tuple[str, Iterator[bytes]]:
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        for _ in range(size // chunk):
            pulled.append(chunk)
            yield b"\0" * chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()


def test_bad_input_gets_clear_4xx_and_stores_nothing(api_server: ApiServer) -> None:
    collection = f"c-{uuid.uuid4().hex[:8]}"
    blobs = api_server.settings.data_dir / "blobs"
    with api_server.client("ingest") as ingest, api_server.client("search") as search:
        before = sorted(blobs.rglob("*")) if blobs.exists() else []

        corrupt = upload(ingest, [("ok.png", png_bytes(1)), ("broken.png", b"\x89PNG\r\n\x1a\n garbage")], collection)
        body = problem(corrupt, 422, "corrupt-upload")
        assert body["errors"][0]["field"] == "files.1" and "broken.png" in body["detail"]
        assert (sorted(blobs.rglob("*")) if blobs.exists() else []) == before  # not even the good file
        assert search.get("/v1/assets", params={"collection": collection}).json()["items"] == []

        traversal = upload(ingest, [("../../etc/evil.png", png_bytes(2))], collection)
        assert problem(traversal, 422, "validation-error")["errors"][0]["field"] == "files.filename"
        problem(upload(ingest, [("notes.txt", b"hello")], collection), 415, "unsupported-media-type")
        problem(ingest.post("/v1/assets", json={"files": []}), 415, "unsupported-media-type")
        problem(
            search.post("/v1/search", content=b"text=cat", headers={"content-type": "text/plain"}),
            415,
            "unsupported-media-type",
        )

        pulled: list[int] = []
        content_type, stream = _multipart("big.png", 4 * MAX_UPLOAD_BYTES, 64 * 1024, pulled)
        too_big = ingest.post("/v1/assets", content=stream, headers={"content-type": content_type})
        problem(too_big, 413, "payload-too-large")
        assert sum(pulled) < 4 * MAX_UPLOAD_BYTES  # refused while streaming, not after the whole body

        for bad, field in [
            ({"text": "x", "limit": 0}, "limit"),
            ({"text": "x", "limit": 1001}, "limit"),
            ({"text": "x", "kind": "hologram"}, "kind"),
            ({"text": "x", "min_score": "NaN"}, "min_score"),
            ({"text": "x", "surprise": 1}, "surprise"),
        ]:
            errors = problem(search.post("/v1/search", json=bad), 422, "validation-error")["errors"]
            assert errors[0]["field"] == field, (bad, errors)
        nan = search.post(
            "/v1/search", content=b'{"text": "x", "min_score": NaN}', headers={"content-type": "application/json"}
        )
        assert problem(nan, 422, "validation-error")["errors"][0]["field"] == "min_score"
        problem(
            search.post("/v1/search", content=b'{"text": "x"', headers={"content-type": "application/json"}),
            400,
            "malformed-json",
        )
        problem(search.post("/v1/search", json={"asset_id": "no-such-asset"}), 404, "not-found")
        problem(search.get("/v1/assets/no-such-asset"), 404, "not-found")
        problem(search.get("/v1/jobs/no-such-job"), 404, "not-found")
        problem(search.get("/v1/nothing-here"), 404, "not-found")
        # PostgreSQL cannot store NUL: refused up front on every database, naming the field.
        nul = problem(search.post("/v1/search", json={"text": "x", "collection": "a\x00b"}), 422, "validation-error")
        assert nul["errors"][0]["field"] == "collection"
        problem(search.get("/v1/assets/a%00b"), 422, "validation-error")
        problem(search.get("/v1/assets", params={"collection": "a\x00b"}), 422, "validation-error")
        bad_query = problem(search.get("/v1/assets", params={"limit": 0}), 422, "validation-error")
        assert bad_query["errors"][0]["field"] == "query.limit"


def test_request_ids_and_access_log(api_server: ApiServer) -> None:
    with api_server.client("search") as search:
        mine = search.get("/v1/assets", headers={"X-Request-ID": "trace-42"})
        assert mine.headers["x-request-id"] == "trace-42"
        generated = search.get("/v1/assets", headers={"X-Request-ID": "bad id with spaces"})
        assert generated.headers["x-request-id"] != "bad id with spaces"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in api_server.log_lines() if line.get("request_id") == "trace-42"]
        if lines:
            break
        time.sleep(0.1)
    (line,) = lines
    assert line["method"] == "GET" and line["path"] == "/v1/assets" and line["status"] == 200
    assert line["key_id"] and isinstance(line["duration_ms"], float)


def test_docs_work_offline(api_server: ApiServer) -> None:
    page = httpx.get(f"{api_server.url}/schema")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert "http://" not in page.text.split("<body>")[0] and "https://" not in page.text.split("<body>")[0]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert httpx.get(f"{api_server.url}/schema/assets/{asset}").status_code == 200
    schema = httpx.get(f"{api_server.url}/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert {"/v1/search", "/v1/assets", "/v1/assets/{asset_id}/content", "/v1/ingest", "/v1/jobs/{job_id}"} <= set(
        schema["paths"]
    )
