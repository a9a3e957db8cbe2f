"""Duplicates over HTTP: groups paged per collection, an asset's group, keep-one, and clear 4xx answers."""

from __future__ import annotations

import uuid

from tests.api.conftest import ApiServer
from tests.api.test_flows import PROBLEM, upload
from tests.near_copies import jpeg_bytes, photo_like, recompressed, resized_half


def test_groups_asset_group_and_keep_one(api_server: ApiServer) -> None:
    collection = f"dups-{uuid.uuid4().hex[:8]}"
    original = photo_like(4242)
    files = [
        ("master.jpg", jpeg_bytes(original)),
        ("web.jpg", resized_half(original)),
        ("chat.jpg", recompressed(original)),
        ("other.jpg", jpeg_bytes(photo_like(4243))),
    ]
    with api_server.client("admin") as admin, api_server.client("search") as reader:
        created = upload(admin, files, collection, "dups")
        assert created.status_code == 201, created.text
        ids = {item["name"]: item["asset"]["id"] for item in created.json()["items"]}

        page = reader.get("/v1/duplicates", params={"collection": collection, "limit": 1})
        assert page.status_code == 200, page.text
        body = page.json()
        assert (body["total"], body["limit"], body["offset"]) == (1, 1, 0)
        (group,) = body["groups"]
        assert group["best_id"] == ids["master.jpg"] and group["size"] == 3
        assert [m["name"] for m in group["members"]][0] == "master.jpg"
        assert group["members"][1]["differences"]["bytes_delta"] < 0

        mine = reader.get(f"/v1/assets/{ids['chat.jpg']}/duplicates").json()
        assert mine["group"]["best_id"] == ids["master.jpg"]
        assert reader.get(f"/v1/assets/{ids['other.jpg']}/duplicates").json() == {"group": None}

        missing = reader.get("/v1/assets/nope/duplicates")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
        bad_tier = reader.get("/v1/duplicates", params={"tier": "fuzzy"})
        assert bad_tier.status_code == 400 or bad_tier.status_code == 422
        similar = reader.get("/v1/duplicates", params={"tier": "similar"})
        assert similar.status_code == 409 and "random weights" in similar.json()["detail"]
        assert reader.post("/v1/duplicates/keep", json={"keep": ids["master.jpg"]}).status_code == 403

        lonely = admin.post("/v1/duplicates/keep", json={"keep": ids["other.jpg"]})
        assert lonely.status_code == 422 and "no near duplicates" in lonely.json()["detail"]
        kept = admin.post("/v1/duplicates/keep", json={"keep": ids["master.jpg"], "merge_labels": True})
        assert kept.status_code == 200, kept.text
        assert sorted(kept.json()["trashed"]) == sorted([ids["web.jpg"], ids["chat.jpg"]])
        assert admin.get(f"/v1/assets/{ids['web.jpg']}").status_code == 404
        after = reader.get("/v1/duplicates", params={"collection": collection}).json()
        assert after["total"] == 0
