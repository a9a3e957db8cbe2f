"""Liveness and readiness: /healthz says the process is up, /readyz checks database, index and broker."""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, Field

from api.rest.state import ApiState
from index.offline import random_weights_message, uses_random_weights

log = logging.getLogger("sensorium.api")


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class EncoderInfo(BaseModel):
    """Which encoder answers searches, and whether its weights mean anything."""

    model: str = Field(description="The open_clip model name (SENSORIUM_ENCODER__MODEL).")
    weights: str = Field(description="The configured weights (SENSORIUM_ENCODER__PRETRAINED).")
    pretrained: bool = Field(description="False while the encoder runs on seeded random weights.")


class Readiness(BaseModel):
    """Whether the process can serve requests, with each dependency's state."""

    status: Literal["ready", "not-ready"]
    checks: dict[str, str] = Field(description="database, index, broker: `ok`, `loading`, `not configured` or an error")
    encoder: EncoderInfo


@get("/healthz", sync_to_thread=False, tags=["health"], summary="Liveness")
def healthz() -> Health:
    """Return ok while the process runs."""
    return Health()


@get(
    "/readyz",
    sync_to_thread=True,
    tags=["health"],
    summary="Readiness",
    responses={503: ResponseSpec(Readiness, description="Not ready; `checks` says why")},
)
def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Return 200 when database, index and (if configured) broker are usable, else 503 with the reasons."""
    state: ApiState = request.app.state.api
    checks = {"database": _database(state), "index": _index(state), "broker": _broker(state)}
    ready = all(v in ("ok", "not configured") for v in checks.values())
    encoder = state.settings.encoder
    info = EncoderInfo(model=encoder.model, weights=encoder.pretrained, pretrained=not uses_random_weights(encoder))
    body = Readiness(status="ready" if ready else "not-ready", checks=checks, encoder=info)
    return Response(body, status_code=200 if ready else 503)


def _database(state: ApiState) -> str:
    from core.status import database_check

    return database_check(state.settings)


def _index(state: ApiState) -> str:
    if state.warm_error:
        return f"error: {state.warm_error}"[:300]
    return "ok" if state.warmed.is_set() else "loading"


def _broker(state: ApiState) -> str:
    url = state.settings.broker_url
    if not url:
        return "not configured"
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # an unreachable broker makes the process not ready, never crash the probe
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def warm_up(state: ApiState) -> threading.Thread:
    """Load the encoder and the live index in the background; /readyz turns ready when done."""

    if uses_random_weights(state.settings.encoder):
        log.warning(random_weights_message(state.settings.encoder))

    def run() -> None:
        from index.encoders import get_encoder
        from index.service import get_live_index

        try:
            get_encoder(state.settings.encoder)
            get_live_index(state.settings)
        except Exception as exc:  # reported by /readyz; requests still get their own clear error
            state.warm_error = f"{type(exc).__name__}: {exc}"
            log.error("warm-up failed; searches will answer with this error: %s", state.warm_error)
        finally:
            state.warmed.set()

    thread = threading.Thread(target=run, name="sensorium-warm-up", daemon=True)
    thread.start()
    return thread
