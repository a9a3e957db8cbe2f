"""Generation over HTTP: POST /v1/generate (JSON and multipart init image), GET /v1/generators."""

from __future__ import annotations

from tests.api.conftest import ApiServer, png_bytes


def test_generate_waits_and_returns_the_finished_job(api_server: ApiServer) -> None:
    with api_server.client("generate") as client, api_server.client("search") as search:
        listed = client.get("/v1/generators").json()["generators"]
        tiny = next(g for g in listed if g["name"] == "tiny-random")
        assert tiny["task"] == "text-to-image" and tiny["weights_available"] is True

        done = client.post(
            "/v1/generate", params={"wait": 120}, json={"generator": "tiny-random", "prompt": "a red cube", "seed": 3}
        )
        assert done.status_code == 200, done.text
        job = done.json()
        assert job["status"] == "succeeded" and done.headers["location"] == job["url"]
        (asset_id,) = job["result"]["asset_ids"]
        asset = search.get(f"/v1/assets/{asset_id}").json()
        assert asset["source"] == "generated" and asset["metadata"]["seed"] == 3

        queued = client.post("/v1/generate", json={"generator": "tiny-random", "prompt": "a blue cube"})
        assert queued.status_code == 202 and queued.json()["status"] in ("queued", "running", "succeeded")

        init = client.post(
            "/v1/generate",
            params={"wait": 120},
            data={"generator": "tiny-random-img2img", "prompt": "the same, in green", "seed": "5"},
            files={"init_image": ("start.png", png_bytes(77), "image/png")},
        )
        assert init.status_code == 200, init.text
        assert init.json()["status"] == "succeeded" and init.json()["params"]["init_image"]

        bad = client.post("/v1/generate", json={"generator": "tiny-random", "prompt": "x", "width": 63})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "width"
        unknown = client.post("/v1/generate", json={"generator": "nope", "prompt": "x"})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "generator"
        corrupt = client.post(
            "/v1/generate",
            data={"generator": "tiny-random-img2img", "prompt": "x"},
            files={"init_image": ("start.png", b"not an image", "image/png")},
        )
        assert corrupt.status_code == 422 and corrupt.json()["errors"][0]["field"] == "init_image"
