"""App policies in-process (Litestar's test client): ingest switch, rate limits, CORS, auth switch, keys, OPTIONS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from api.rest.app import create_app
from core.apikeys import create_key
from core.settings import AuthSettings, Settings


def _with(settings: Settings, **api: Any) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update=api)})


@contextmanager
def client(settings: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_server_side_ingest_is_off_until_roots_are_configured(settings: Settings) -> None:
    assert settings.ingest.allowed_roots is None
    secret = create_key("i", ["ingest"], settings).secret
    with client(settings) as c:
        response = c.post("/v1/ingest", json={"paths": ["/tmp"]}, headers=bearer(secret))
    assert response.status_code == 403
    body = response.json()
    assert (
        body["type"] == "urn:sensorium:problem:ingest-disabled" and "SENSORIUM_INGEST__ALLOWED_ROOTS" in body["detail"]
    )


def test_rate_limit_is_per_key_with_retry_after(settings: Settings) -> None:
    limited = _with(settings, rate_limit_per_minute=2)
    first, second = (create_key(n, ["search"], limited).secret for n in ("a", "b"))
    with client(limited) as c:
        statuses = [c.get("/v1/assets", headers=bearer(first)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = c.get("/v1/assets", headers=bearer(first))
        assert refused.json()["type"] == "urn:sensorium:problem:rate-limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert c.get("/v1/assets", headers=bearer(second)).status_code == 200  # another key has its own budget


def test_cors_is_off_by_default_and_follows_the_setting(settings: Settings) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with client(settings) as c:
        assert "access-control-allow-origin" not in c.options("/v1/search", headers=preflight).headers
    with client(_with(settings, cors_origins=["https://app.example"])) as c:
        allowed = c.options("/v1/search", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/v1/search", headers={**preflight, "Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_auth_switch_serves_loopback_clients_only(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth": AuthSettings(disabled=True)}))

    async def get(host: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(host, 5000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return (await c.get("/v1/keys")).status_code

    assert anyio.run(get, "127.0.0.1") == 200
    assert anyio.run(get, "192.168.1.20") == 403


def test_keys_over_http(settings: Settings) -> None:
    admin = create_key("root", ["admin"], settings)
    with client(settings) as c:
        made = c.post("/v1/keys", json={"name": "app", "scopes": ["search"]}, headers=bearer(admin.secret))
        assert made.status_code == 201
        new = made.json()
        assert c.get("/v1/assets", headers=bearer(new["secret"])).status_code == 200
        assert c.get("/v1/keys", headers=bearer(new["secret"])).status_code == 403
        listed = c.get("/v1/keys", headers=bearer(admin.secret)).json()
        assert {k["name"] for k in listed} == {"root", "app"} and all("secret" not in k for k in listed)
        assert c.post(f"/v1/keys/{new['id']}/revoke", headers=bearer(admin.secret)).json()["revoked"] is True
        assert c.get("/v1/assets", headers=bearer(new["secret"])).status_code == 401
        own = c.post(f"/v1/keys/{admin.info.id}/revoke", headers=bearer(admin.secret))
        assert own.status_code == 409  # an admin cannot lock itself out
        bad = c.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=bearer(admin.secret))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("scopes")


def test_options_lists_every_method_and_405_is_a_problem(settings: Settings) -> None:
    secret = create_key("s", ["admin"], settings).secret
    with client(settings) as c:
        assert c.options("/v1/assets").headers["allow"] == "GET, OPTIONS, POST"
        response = c.put("/v1/search", headers=bearer(secret), json={})
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("application/problem+json")


def test_signing_key_is_created_once_and_kept(settings: Settings) -> None:
    from api.rest.signing import KEY_FILE, load_signing_key

    first = load_signing_key(settings)
    path: Path = settings.resolved_data_dir() / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600 and len(first) == 64
    assert load_signing_key(settings) == first
    assert load_signing_key(_with(settings, signing_key="explicit")) == b"explicit"


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/schema/openapi.json", "/schema"])
def test_open_routes_need_no_key(settings: Settings, route: str) -> None:
    with client(settings) as c:
        assert c.get(route).status_code in (200, 503)  # /readyz may still be warming up
