"""Managing assets over HTTP: PATCH, bulk labels, the trash, and timestamps that carry their UTC offset."""

from __future__ import annotations

import uuid
from datetime import datetime

from agent.tools import asset_to_dict
from index.services.assets import get_asset
from tests.api.conftest import ApiServer, png_bytes
from tests.api.test_flows import problem, upload


def _aware(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() is not None


def test_patch_bulk_labels_trash_and_restore(api_server: ApiServer) -> None:
    collection = f"m-{uuid.uuid4().hex[:8]}"
    with api_server.client("ingest") as ingest, api_server.client("search") as search:
        created = upload(
            ingest, [(f"p{i}.png", png_bytes(7000 + i + uuid.uuid4().int % 1000)) for i in range(3)], collection
        )
        assert created.status_code == 201, created.text
        ids = [item["asset"]["id"] for item in created.json()["items"]]
        first = created.json()["items"][0]["asset"]
        assert _aware(first["created_at"]) and _aware(first["updated_at"])

        patched = ingest.patch(
            f"/v1/assets/{ids[0]}", json={"name": "renamed.png", "tags": ["b", "a"], "collections": ["x", collection]}
        )
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert (body["name"], body["tags"], body["collections"]) == (
            "renamed.png",
            ["a", "b"],
            sorted(["x", collection]),
        )
        assert _aware(body["updated_at"])
        problem(ingest.patch(f"/v1/assets/{ids[0]}", json={"colour": "red"}), 422, "validation-error")
        problem(ingest.patch("/v1/assets/nope", json={"tags": []}), 404, "not-found")
        problem(search.patch(f"/v1/assets/{ids[0]}", json={"tags": []}), 403, "forbidden")

        bulk = ingest.post("/v1/assets/labels", json={"ids": ids, "add": ["bulk"], "remove": ["a"]})
        assert bulk.status_code == 200, bulk.text
        assert all("bulk" in item["tags"] and "a" not in item["tags"] for item in bulk.json()["items"])
        unknown = ingest.post("/v1/assets/labels", json={"ids": [ids[1], "missing-id"], "add": ["never"]})
        problem(unknown, 404, "not-found")
        assert "never" not in search.get(f"/v1/assets/{ids[1]}").json()["tags"]  # all or nothing
        tagged = search.get("/v1/assets", params={"collection": collection, "tag": "bulk"}).json()["items"]
        assert {a["id"] for a in tagged} == set(ids)

        assert ingest.delete(f"/v1/assets/{ids[2]}").status_code == 204
        trash = search.get("/v1/assets", params={"collection": collection, "trash": "true"}).json()["items"]
        assert [a["id"] for a in trash] == [ids[2]] and _aware(trash[0]["trashed_at"])
        live = search.get("/v1/assets", params={"collection": collection}).json()["items"]
        assert ids[2] not in {a["id"] for a in live}

    asset = get_asset(api_server.settings, ids[0])  # the agent's view of the same asset
    shown = asset_to_dict(asset)
    assert _aware(shown["created_at"]) and shown["collections"] == sorted(["x", collection])
