"""Low-severity findings of the red-team pass, against a real server on SQLite and PostgreSQL.

Deeply nested JSON, absurd Range numbers, 403 details that told where paths resolve, and server paths in `uri`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.api.conftest import ApiServer, png_bytes
from tests.api.test_flows import problem, upload, wait_for_job

DEEP_ARRAY = "[" * 1000 + "]" * 1000  # about 2 KB
DEEP_OBJECT = '{"a":' * 990 + "1" + "}" * 990
JSON_ROUTES = ("/v1/search", "/v1/ingest", "/v1/generate", "/v1/images/generations", "/v1/agent", "/v1/keys")


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_deeply_nested_json_is_a_400_on_every_json_route(api_server: ApiServer, route: str) -> None:
    with api_server.client("admin") as admin:
        for body in (DEEP_ARRAY, DEEP_OBJECT):
            response = admin.post(route, content=body, headers={"Content-Type": "application/json"})
            found = problem(response, 400, "malformed-json")
            assert "MAX_JSON_DEPTH" in found["detail"]
        # A string full of brackets is not nesting.
        fine = admin.post("/v1/search", json={"text": "[" * 2000, "limit": 1})
        assert fine.status_code == 200, fine.text
    assert "RecursionError" not in api_server.log.read_text(errors="replace")


def test_a_range_with_a_4301_digit_number_is_a_416_without_a_traceback(api_server: ApiServer) -> None:
    with api_server.client("ingest") as ingest:
        created = upload(ingest, [("range.png", png_bytes(4301))], f"range-{uuid.uuid4().hex[:6]}")
        asset_id = created.json()["items"][0]["asset"]["id"]
    huge = "9" * 4301
    with api_server.client("search") as search:
        for header in (f"bytes={huge}-", f"bytes=0-{huge}", f"bytes=-{huge}"):
            response = search.get(f"/v1/assets/{asset_id}/content", headers={"Range": header})
            found = problem(response, 416, "range-not-satisfiable")
            assert "digits" in found["detail"] and response.headers["content-range"].startswith("bytes */")
        assert search.get(f"/v1/assets/{asset_id}/content", headers={"Range": "bytes=0-9"}).status_code == 206
    log = api_server.log.read_text(errors="replace")
    assert "Traceback" not in log and "Exceeds the limit" not in log


def test_a_403_names_only_what_the_client_sent(api_server: ApiServer, tmp_path: Path) -> None:
    outside = tmp_path / "secret-place"
    outside.mkdir()
    link = api_server.library / f"link-{uuid.uuid4().hex[:6]}"
    link.symlink_to(outside)
    with api_server.client("ingest") as ingest:
        for sent in ("/etc", str(link), f"{api_server.library}/../../etc"):
            found = problem(ingest.post("/v1/ingest", json={"paths": [sent]}), 403, "path-not-allowed")
            assert sent in found["detail"] and found["errors"][0]["field"] == "paths.0"
            # Neither where it resolves nor the server's roots.
            assert str(outside) not in found["detail"] and "resolves" not in found["detail"]
            assert f"({api_server.library}" not in found["detail"] and "ALLOWED_ROOTS" not in found["detail"]


def test_uri_is_a_full_path_only_for_admin_keys(api_server: ApiServer) -> None:
    collection = f"uri-{uuid.uuid4().hex[:6]}"
    folder = api_server.library / collection / "holiday"
    folder.mkdir(parents=True)
    (folder / "beach.png").write_bytes(png_bytes(4302))
    with api_server.client("admin") as admin:
        job = admin.post("/v1/ingest", json={"paths": [str(folder)], "collection": collection})
        assert wait_for_job(admin, job.json()["id"])["status"] == "succeeded"
        [asset] = admin.get("/v1/assets", params={"collection": collection}).json()["items"]
        full = str((folder / "beach.png").resolve())
        assert asset["uri"] == full
        hits = admin.post("/v1/search", json={"text": "beach", "collection": collection}).json()["results"]
        assert hits[0]["uri"] == full
    relative = f"{collection}/holiday/beach.png"
    with api_server.client("search") as search:
        assert search.get(f"/v1/assets/{asset['id']}").json()["uri"] == relative
        assert search.get("/v1/assets", params={"collection": collection}).json()["items"][0]["uri"] == relative
        [hit] = search.post("/v1/search", json={"text": "beach", "collection": collection}).json()["results"]
        assert hit["uri"] == relative and set(hit) >= {"asset_id", "name", "uri", "kind", "score", "segment"}
        by_agent = search.post("/v1/agent", json={"request": f"find beach photos in {collection}"})
        assert by_agent.status_code == 200, by_agent.text
        assert all(not str(a["uri"]).startswith("/") for a in by_agent.json()["assets"])
    with api_server.client("ingest") as ingest:
        uploaded = upload(ingest, [("upload.png", png_bytes(4303))], collection).json()["items"][0]["asset"]
        assert not uploaded["uri"].startswith("/")  # a blob key, unchanged
