"""A file indexed in place is served only while it is the file that was indexed: symlink and rename swaps get 404."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from pathlib import Path

import httpx

from api.rest.content import file_response
from index.content import open_content
from tests.api.conftest import ApiServer
from tests.api.test_flows import problem, wait_for_job
from tests.media_images import write_images


def _ingest_folder(server: ApiServer, count: int) -> tuple[Path, list[tuple[Path, str, str]]]:
    """Ingest ``count`` new images in place; return the folder and (path, asset id, signed content URL) for each."""
    folder = server.library / f"swap-{uuid.uuid4().hex[:8]}"
    paths = write_images(folder, count, start_seed=int(uuid.uuid4().int % 10_000) + 20_000)
    collection = f"swap-{folder.name}"
    with server.client("ingest") as ingest, server.client("search") as search:
        job = ingest.post("/v1/ingest", json={"paths": [str(folder)], "collection": collection})
        assert job.status_code == 202, job.text
        assert wait_for_job(ingest, job.json()["id"])["status"] == "succeeded"
        items = search.get("/v1/assets", params={"collection": collection, "limit": 100}).json()["items"]
    by_name = {item["name"]: item for item in items}
    return folder, [(p, by_name[p.name]["id"], by_name[p.name]["content_url"]) for p in paths]


def _secret_file(path: Path) -> bytes:
    if not path.exists():
        path.write_text(secrets.token_hex(32))
    return path.read_bytes()


def _refused(server: ApiServer, asset_id: str, signed_url: str, secret: bytes) -> None:
    with server.client("search") as search, httpx.Client(timeout=30) as anonymous:
        for response in (search.get(f"/v1/assets/{asset_id}/content"), anonymous.get(signed_url)):
            problem(response, 404, "content-unavailable")
            assert secret not in response.content
        ranged = search.get(f"/v1/assets/{asset_id}/content", headers={"Range": "bytes=0-9"})
        problem(ranged, 404, "content-unavailable")


def test_swapped_files_are_never_served(api_server: ApiServer, tmp_path: Path) -> None:
    folder, assets = _ingest_folder(api_server, 5)
    (to_key, key_id, key_url), (to_outside, out_id, out_url), (renamed, ren_id, ren_url) = assets[:3]
    (linked_inside, in_id, in_url), (kept, kept_id, kept_url) = assets[3:]
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.get(key_url).content == to_key.read_bytes()  # served while unchanged

    signing_key = _secret_file(api_server.settings.resolved_data_dir() / "api-signing.key")
    to_key.unlink()
    to_key.symlink_to(api_server.settings.resolved_data_dir() / "api-signing.key")
    _refused(api_server, key_id, key_url, signing_key)

    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside the allowed roots " + secrets.token_bytes(16))
    to_outside.unlink()
    to_outside.symlink_to(outside)
    _refused(api_server, out_id, out_url, outside.read_bytes())

    other = write_images(folder / "other", 2, start_seed=int(uuid.uuid4().int % 10_000) + 40_000)
    os.replace(other[0], renamed)  # a file inside the roots with other content takes the path
    _refused(api_server, ren_id, ren_url, renamed.read_bytes())
    linked_inside.unlink()
    linked_inside.symlink_to(other[1])
    _refused(api_server, in_id, in_url, other[1].read_bytes())

    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.get(kept_url).content == kept.read_bytes()  # untouched files are still served
    warnings = " ".join(
        str(line["message"])
        for line in api_server.log_lines()
        if line.get("level") == "WARNING" and "not serving asset" in str(line.get("message"))
    )
    assert all(asset_id in warnings for asset_id in (key_id, out_id, ren_id, in_id)), warnings
    with api_server.client("search") as search:  # flagged for the next scan, still listed
        assert search.get(f"/v1/assets/{key_id}").status_code == 200


def test_a_swap_after_the_open_does_not_change_what_is_streamed(api_server: ApiServer) -> None:
    _, [(path, asset_id, _)] = _ingest_folder(api_server, 1)
    original = path.read_bytes()
    opened = open_content(api_server.settings, asset_id)
    path.unlink()  # swapped between the open and the first byte
    path.symlink_to(api_server.settings.resolved_data_dir() / "api-signing.key")
    _secret_file(api_server.settings.resolved_data_dir() / "api-signing.key")
    response = file_response(opened.handle, opened.size, "image/png", filename=path.name, range_header=None)

    async def body() -> bytes:
        iterator = response.iterator
        return b"".join([chunk async for chunk in iterator])  # type: ignore[union-attr]

    assert asyncio.run(body()) == original
    assert opened.handle.closed
