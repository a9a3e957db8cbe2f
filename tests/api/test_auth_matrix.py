"""Every route x {no key, wrong key, revoked key, each scope} gets the expected status, over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, png_bytes
from tests.media_images import write_images

SCOPES = ("search", "generate", "ingest", "admin")
# Credentials that never get past authentication on a protected route.
REJECTED = ("none", "wrong", "revoked")
# Routes owned by other controllers' own tests (the agent checks scopes per tool it runs).
OTHER_OWNERS = ("/v1/agent",)


@dataclass
class Fixtures:
    """Ids the requests point at, made once with the admin key."""

    asset_id: str
    job_id: str
    library: str


@dataclass
class Route:
    """One operation: how to call it, which scope it needs, and what an authorised call returns."""

    method: str
    path: str  # as in the OpenAPI schema
    scope: str | None  # None: open route
    ok: int
    call: Callable[[httpx.Client, Fixtures, ApiServer], httpx.Response]
    # Job routes answer 404 to keys other than the job's owner (and admin), hiding the job's existence.
    others: int = 403


def _fresh_asset(server: ApiServer) -> str:
    with server.client("admin") as admin:
        response = admin.post("/v1/assets", files=[("files", ("d.png", png_bytes(int(uuid.uuid4().int % 10**6))))])
        return str(response.json()["items"][0]["asset"]["id"])


def _first_segment(server: ApiServer, asset_id: str) -> int:
    from sqlalchemy import select

    from core.db.engine import read_session
    from core.db.models import Segment

    with read_session(server.settings) as session:
        return int(session.execute(select(Segment.id).where(Segment.asset_id == asset_id).limit(1)).scalar_one())


def _throwaway_key(server: ApiServer) -> str:
    from core.apikeys import create_key

    return create_key("throwaway", ["search"], server.settings).info.id


ROUTES = [
    Route("GET", "/healthz", None, 200, lambda c, f, s: c.get("/healthz")),
    Route("GET", "/readyz", None, 200, lambda c, f, s: c.get("/readyz")),
    Route("GET", "/schema/openapi.json", None, 200, lambda c, f, s: c.get("/schema/openapi.json")),
    Route("POST", "/v1/search", "search", 200, lambda c, f, s: c.post("/v1/search", json={"text": "a cat"})),
    Route("GET", "/v1/assets", "search", 200, lambda c, f, s: c.get("/v1/assets")),
    Route("GET", "/v1/assets/{asset_id}", "search", 200, lambda c, f, s: c.get(f"/v1/assets/{f.asset_id}")),
    Route(
        "GET",
        "/v1/assets/{asset_id}/content",
        "search",
        200,
        lambda c, f, s: c.get(f"/v1/assets/{f.asset_id}/content"),
    ),
    Route(
        "GET",
        "/v1/assets/{asset_id}/thumbnail",
        "search",
        200,
        lambda c, f, s: c.get(f"/v1/assets/{f.asset_id}/thumbnail"),
    ),
    Route(
        "GET",
        "/v1/assets/{asset_id}/segments/{segment_id}/thumbnail",
        "search",
        200,
        lambda c, f, s: c.get(f"/v1/assets/{f.asset_id}/segments/{_first_segment(s, f.asset_id)}/thumbnail"),
    ),
    Route(
        "POST",
        "/v1/assets",
        "ingest",
        201,
        lambda c, f, s: c.post("/v1/assets", files=[("files", ("m.png", png_bytes(4242)))]),
    ),
    Route("DELETE", "/v1/assets/{asset_id}", "ingest", 204, lambda c, f, s: c.delete(f"/v1/assets/{_fresh_asset(s)}")),
    Route(
        "PATCH",
        "/v1/assets/{asset_id}",
        "ingest",
        200,
        lambda c, f, s: c.patch(f"/v1/assets/{f.asset_id}", json={"tags": ["matrix"]}),
    ),
    Route(
        "POST",
        "/v1/assets/labels",
        "ingest",
        200,
        lambda c, f, s: c.post("/v1/assets/labels", json={"ids": [f.asset_id], "add": ["matrix"]}),
    ),
    Route("GET", "/v1/duplicates", "search", 200, lambda c, f, s: c.get("/v1/duplicates")),
    Route(
        "GET",
        "/v1/assets/{asset_id}/duplicates",
        "search",
        200,
        lambda c, f, s: c.get(f"/v1/assets/{f.asset_id}/duplicates"),
    ),
    # An authorised keep names an unknown asset: the 404 proves auth passed without trashing anything.
    Route(
        "POST",
        "/v1/duplicates/keep",
        "ingest",
        404,
        lambda c, f, s: c.post("/v1/duplicates/keep", json={"keep": "no-such-asset"}),
    ),
    Route("POST", "/v1/ingest", "ingest", 202, lambda c, f, s: c.post("/v1/ingest", json={"paths": [f.library]})),
    Route("GET", "/v1/jobs", "any", 200, lambda c, f, s: c.get("/v1/jobs")),
    Route("GET", "/v1/jobs/{job_id}", "admin", 200, lambda c, f, s: c.get(f"/v1/jobs/{f.job_id}"), others=404),
    Route(
        "POST",
        "/v1/jobs/{job_id}/cancel",
        "admin",
        200,
        lambda c, f, s: c.post(f"/v1/jobs/{f.job_id}/cancel"),
        others=404,
    ),
    # Authorised generation calls carry a parameter error: the 422 proves auth passed without running a pipeline.
    Route(
        "POST",
        "/v1/generate",
        "generate",
        422,
        lambda c, f, s: c.post("/v1/generate", json={"prompt": "x", "steps": 0}),
    ),
    Route("GET", "/v1/generators", "generate", 200, lambda c, f, s: c.get("/v1/generators")),
    Route(
        "POST",
        "/v1/images/generations",
        "generate",
        422,
        lambda c, f, s: c.post("/v1/images/generations", json={"prompt": "x", "size": "big"}),
    ),
    Route("GET", "/v1/keys", "admin", 200, lambda c, f, s: c.get("/v1/keys")),
    Route(
        "POST", "/v1/keys", "admin", 201, lambda c, f, s: c.post("/v1/keys", json={"name": "n", "scopes": ["search"]})
    ),
    Route(
        "POST",
        "/v1/keys/{key_id}/revoke",
        "admin",
        200,
        lambda c, f, s: c.post(f"/v1/keys/{_throwaway_key(s)}/revoke"),
    ),
]


def expected(route: Route, credential: str) -> int:
    """Return the status a credential should get on a route."""
    if route.scope is None:
        return route.ok
    if credential in REJECTED:
        return 401
    if route.scope == "any" or credential == "admin" or credential == route.scope:
        return route.ok
    return route.others


@pytest.fixture(scope="module")
def matrix_setup(api_server: ApiServer) -> tuple[Fixtures, dict[str, str | None]]:
    """Make an asset, an admin-owned job, a revoked key, and the credential for each case."""
    from core.apikeys import create_key, revoke_key

    folder = api_server.library / f"matrix-{uuid.uuid4().hex[:6]}"
    write_images(folder, 1, start_seed=7000)
    asset_id = _fresh_asset(api_server)
    with api_server.client("admin") as admin:
        job = admin.post("/v1/ingest", json={"paths": [str(folder)]})
        assert job.status_code == 202, job.text
    revoked = create_key("revoked", ["admin"], api_server.settings)
    revoke_key(revoked.info.id, api_server.settings)
    credentials: dict[str, str | None] = {
        "none": None,
        "wrong": "sk-sens-" + "x" * 43,
        "revoked": revoked.secret,
        **{scope: api_server.keys[scope] for scope in SCOPES},
    }
    return Fixtures(asset_id, job.json()["id"], str(folder)), credentials


def test_matrix_covers_every_route(api_server: ApiServer) -> None:
    schema = httpx.get(f"{api_server.url}/schema/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if not path.startswith(OTHER_OWNERS)
        for method in operations
    }
    assert documented <= {(r.method, r.path) for r in ROUTES}


@pytest.mark.parametrize("credential", [*REJECTED, *SCOPES])
def test_auth_matrix(
    api_server: ApiServer, matrix_setup: tuple[Fixtures, dict[str, str | None]], credential: str
) -> None:
    fixtures, credentials = matrix_setup
    secret = credentials[credential]
    got: dict[str, Any] = {}
    want: dict[str, Any] = {}
    with api_server.client(secret) as client:
        for route in ROUTES:
            response = route.call(client, fixtures, api_server)
            key = f"{route.method} {route.path}"
            got[key], want[key] = response.status_code, expected(route, credential)
            if response.status_code in (401, 403) and route.scope is not None:
                assert response.headers["content-type"].startswith("application/problem+json")
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == "Bearer"
    assert got == want
