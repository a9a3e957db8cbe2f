"""The official `openai` client, pointed at the server, generates images as base64 and as signed URLs."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.api.conftest import ApiServer


def test_openai_images_generate(api_server: ApiServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=api_server.keys["generate"], max_retries=0)

    as_b64 = client.images.generate(
        model="tiny-random", prompt="a red cube", size="64x64", n=2, response_format="b64_json", timeout=300
    )
    assert len(as_b64.data) == 2
    images = [Image.open(io.BytesIO(base64.b64decode(d.b64_json or ""))) for d in as_b64.data]
    assert [(i.format, i.size) for i in images] == [("PNG", (64, 64))] * 2

    as_url = client.images.generate(model="tiny-random", prompt="a blue sphere", size="64x64", timeout=300)
    url = as_url.data[0].url or ""
    fetched = httpx.get(url, timeout=30)  # signed: no key needed
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (64, 64)

    with pytest.raises(openai.UnprocessableEntityError):
        client.images.generate(model="tiny-random", prompt="x", size="63x64")
    with pytest.raises(openai.UnprocessableEntityError):
        client.images.generate(model="no-such-model", prompt="x")
