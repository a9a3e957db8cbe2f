"""Request ids, access logs and request metrics, wrapped around the whole app so 404s and errors count too."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from core.logs import bind_request
from core.metrics import observe_request

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("sensorium.access")

REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` if sane), echo it, log one JSON line and time it.

    The id is also bound to the request's log records (core.logs); the duration is recorded under the route's
    template (``/v1/assets/{asset_id}``), never the raw path, so the metric's labels stay few.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._allow: dict[int, bytes] | None = None

    def _with_full_allow(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Replace Litestar's automatic ``Allow``, which omits methods a controller adds on the same path."""
        handler, app = scope.get("route_handler"), scope.get("litestar_app")
        if handler is None or app is None:
            return headers
        if self._allow is None:
            self._allow = _allow_by_handler(app)
        methods = self._allow.get(id(handler))
        if methods is None:
            return headers
        return [(k, v) for k, v in headers if k.lower() != b"allow"] + [(b"allow", methods)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, recording status, size and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _CLIENT_ID.match(incoming) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        outcome: dict[str, int] = {"status": 500, "bytes": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                if scope.get("method") == "OPTIONS":
                    headers = self._with_full_allow(scope, headers)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                outcome["bytes"] += len(message.get("body", b""))
            await send(message)

        with bind_request(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                observe_request(scope.get("path_template"), str(scope.get("method")), outcome["status"], elapsed)
                if access_log.isEnabledFor(logging.INFO):
                    access_log.info(_line(scope, state, request_id, outcome, elapsed))


def _allow_by_handler(app: Any) -> dict[int, bytes]:
    """Map each route handler to the full method list of its route."""
    allow: dict[int, bytes] = {}
    for route in app.routes:
        methods = ", ".join(sorted(m for m in getattr(route, "methods", ()) if m.isupper())).encode()
        for handler in getattr(route, "route_handlers", ()):
            allow[id(handler)] = methods
    return allow


def _line(scope: Scope, state: dict[str, Any], request_id: str, outcome: dict[str, int], elapsed: float) -> str:
    who = state.get("principal")
    client = scope.get("client")
    return json.dumps(
        {
            "ts": round(time.time(), 3),
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": scope.get("path"),  # never the query: it may carry URL signatures
            "status": outcome["status"],
            "bytes": outcome["bytes"],
            "duration_ms": round(elapsed * 1000, 2),
            "key_id": getattr(who, "key_id", None),
            "client": client[0] if client else None,
        },
        separators=(",", ":"),
    )
