"""RFC 9457 problem details: one stable ``type`` per error, and the handlers that turn exceptions into them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from litestar.exceptions import HTTPException
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from litestar import Request, Response
    from litestar.types import ExceptionHandlersMap

log = logging.getLogger("sensorium.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:sensorium:problem:"

# slug -> (status, title). The slug is the stable part of ``type``; clients branch on it, never on ``detail``.
PROBLEM_TYPES: Mapping[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "malformed-json": (400, "Malformed JSON body"),
    "malformed-multipart": (400, "Malformed multipart body"),
    "unauthorized": (401, "Missing or invalid API key"),
    "forbidden": (403, "The API key lacks the scope for this route"),
    "ingest-disabled": (403, "Server-side ingest is not configured"),
    "path-not-allowed": (403, "Path outside the allowed ingest roots"),
    "signature-invalid": (403, "Invalid URL signature"),
    "signature-expired": (403, "Expired URL signature"),
    "not-found": (404, "Not found"),
    "content-unavailable": (404, "The asset's content is not available"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported content type"),
    "range-not-satisfiable": (416, "Range not satisfiable"),
    "validation-error": (422, "Invalid request parameters"),
    "invalid-search": (422, "Invalid search"),
    "corrupt-upload": (422, "Upload could not be decoded"),
    "invalid-generation": (422, "Invalid generation parameters"),
    "rate-limited": (429, "Too many requests"),
    "queue-full": (429, "Job queue is full"),
    "too-many-waits": (429, "Too many waiting requests for this key"),
    "internal-error": (500, "Internal server error"),
    "job-failed": (502, "The job failed"),
    "unavailable": (503, "Service unavailable"),
    "model-mismatch": (503, "Index built with another model"),
}

_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "validation-error",
    429: "rate-limited",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Dotted path of the field, e.g. `limit`, `tags.0`, `query.kind`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description=f"Stable identifier of the error kind: `{TYPE_PREFIX}<slug>`.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="Each invalid field (validation errors).")


class ProblemError(HTTPException):
    """An HTTP error with a problem ``slug``; raise it anywhere in a handler or guard."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        errors: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        status, title = PROBLEM_TYPES[slug]
        super().__init__(detail=detail or title, status_code=status, headers=headers)
        self.slug = slug
        self.errors = errors or []


def problem_response(
    request: Request[Any, Any, Any],
    slug: str,
    detail: str | None,
    *,
    status: int | None = None,
    errors: list[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[Any]:
    """Return a problem+json response for ``slug``."""
    from litestar import Response

    default_status, title = PROBLEM_TYPES[slug]
    status = status or default_status
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    if errors:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


def _validation_errors(extra: Any) -> list[tuple[str, str]]:
    """Turn Litestar's ValidationException ``extra`` into (field, message) pairs."""
    errors: list[tuple[str, str]] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            key = item.get("key") or "body"
            source = getattr(item.get("source"), "value", item.get("source"))
            field = f"{source}.{key}" if source in ("query", "path", "header", "cookie") else str(key)
            errors.append((field, str(item.get("message", "invalid value"))))
    return errors


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    from litestar.exceptions import SerializationException, ValidationException

    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    if isinstance(exc, ProblemError):
        return problem_response(request, exc.slug, exc.detail, errors=exc.errors, headers=headers)
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        if errors:
            return problem_response(request, "validation-error", "request validation failed", errors=errors)
        return problem_response(request, "validation-error", exc.detail)
    if exc.status_code == 400 and isinstance(exc.__cause__, SerializationException):
        return problem_response(request, "malformed-json", exc.detail)
    if exc.status_code >= 500:
        return _unexpected(request, exc)
    slug = _BY_STATUS.get(exc.status_code, "bad-request")
    return problem_response(request, slug, exc.detail, status=exc.status_code, headers=headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.url.path,
        request.scope.get("state", {}).get("request_id"),
        exc_info=exc,
    )
    return problem_response(request, "internal-error", "an unexpected error occurred; the request id is in the logs")


def _domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Map the errors lower layers raise to problems, so no user-fixable condition becomes a 500."""
    from index.encoders import EncoderWeightsUnavailable
    from index.library import ModelMismatchError
    from index.search import SearchError

    if isinstance(exc, SearchError):
        return problem_response(request, "invalid-search", str(exc))
    if isinstance(exc, ModelMismatchError):
        return problem_response(request, "model-mismatch", str(exc))
    if isinstance(exc, EncoderWeightsUnavailable):
        return problem_response(request, "unavailable", str(exc))
    return _unexpected(request, exc)


def exception_handlers() -> ExceptionHandlersMap:
    """Return the app-wide exception handlers (every error leaves as problem+json)."""
    return {HTTPException: _http_exception, Exception: _domain_error}


# Every guarded route can answer these: no or a bad key, a missing scope, a malformed URL, the rate limit.
_GUARD_STATUSES = (401, 403, 422, 429)


def problem_responses(*statuses: int) -> dict[int, Any]:
    """Return OpenAPI ``responses`` documenting problem+json bodies for these statuses (and the guard's)."""
    from litestar.openapi.datastructures import ResponseSpec

    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=", ".join(f"`{slug}`" for slug, (code, _) in PROBLEM_TYPES.items() if code == status),
            generate_examples=False,
        )
        for status in sorted({*statuses, *_GUARD_STATUSES})
    }
