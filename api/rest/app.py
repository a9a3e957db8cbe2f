"""Build the Litestar app: /v1 routes behind API-key auth, health probes, /metrics, OpenAPI 3.1 and offline docs.

Torch, FAISS and the encoder are not imported here; they load in a background warm-up after start (``/readyz``
reports when they are ready) or on the first request that needs them.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from api.rest.agent import AgentController
from api.rest.assets import AssetController
from api.rest.auth import api_guard
from api.rest.docs import OfflineSwaggerPlugin
from api.rest.duplicates import DuplicateController
from api.rest.generate import GenerateController
from api.rest.health import healthz, readyz, warm_up
from api.rest.ingest import IngestController
from api.rest.jobs import JobController
from api.rest.json_depth import JsonDepthLimit
from api.rest.keys import KeyController
from api.rest.metrics import metrics, metrics_registry
from api.rest.middleware import RequestContextMiddleware
from api.rest.moments import MomentController
from api.rest.openapi import BEARER, components
from api.rest.problems import TYPE_PREFIX, exception_handlers
from api.rest.ratelimit import RateLimiter
from api.rest.search import SearchController
from api.rest.signing import UrlSigner, load_signing_key
from api.rest.state import ApiState
from api.rest.waits import JobWaiter
from core.settings import Settings, get_settings

log = logging.getLogger("sensorium.api")

API_VERSION = "1.0.0"
DESCRIPTION = f"""Search, browse, upload and generate media.

Authenticate with `Authorization: Bearer <api key>` (create one with `sensorium keys create --name N --scope S`).
Scopes: `search` (search, assets, content, thumbnails), `ingest` (uploads, server-side ingest, deletes),
`generate` (generation), `admin` (keys, and everything else). Jobs are visible to the key that created them.

Errors are RFC 9457 problem details (`application/problem+json`); branch on `type`, which is
`{TYPE_PREFIX}<slug>` and stable. Validation errors list each invalid field in `errors`.
Content and thumbnail URLs in responses are signed and expire, so they work without a key.
"""


def create_app(settings: Settings | None = None) -> Litestar:
    """Return the Sensorium REST app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    state = ApiState(
        settings=settings,
        signer=UrlSigner(load_signing_key(settings), settings.api.url_ttl_s),
        limiter=RateLimiter(settings.api.rate_limit_per_minute, redis_url=settings.broker_url),
        waiter=JobWaiter(settings),
    )
    v1 = Router(
        "/v1",
        route_handlers=[
            SearchController,
            AssetController,
            MomentController,
            IngestController,
            JobController,
            GenerateController,
            KeyController,
            AgentController,
            DuplicateController,
        ],
        guards=[api_guard],
        security=[{BEARER: []}],
    )

    def on_startup(app: Litestar) -> None:
        from core.jobs import start_embedded_executor

        warm_up(state)
        start_embedded_executor(settings)  # embedded mode: this process runs queued jobs

    def on_shutdown(app: Litestar) -> None:
        from core.jobs import stop_executors

        stop_executors()  # lets running embedded jobs finish; queued ones resume at the next start

    handlers: list[Any] = [healthz, readyz, v1]
    app_state: dict[str, Any] = {"api": state}
    if settings.api.metrics_enabled:
        handlers.append(metrics)
        app_state["metrics"] = metrics_registry(state)
    app = Litestar(
        route_handlers=handlers,
        exception_handlers=exception_handlers(),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        state=_state(app_state),
        request_max_body_size=settings.api.max_json_bytes,
        cors_config=CORSConfig(
            allow_origins=settings.api.cors_origins,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Range", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location", "Content-Range"],
        )
        if settings.api.cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="Sensorium",
            version=API_VERSION,
            description=DESCRIPTION,
            components=components(),
            render_plugins=[OfflineSwaggerPlugin(), JsonRenderPlugin()],
        ),
        logging_config=None,
        debug=False,
    )
    # Outermost, so unmatched routes (404/405) and errors also get a request id and an access-log line.
    app.asgi_handler = RequestContextMiddleware(
        JsonDepthLimit(app.asgi_handler, settings.api.max_json_depth, settings.api.max_json_bytes)
    )
    return app


def _state(values: dict[str, Any]) -> Any:
    from litestar.datastructures import State

    return State(values)
