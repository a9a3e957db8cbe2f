"""Bearer API keys with scopes, signed URLs, per-key rate limits and content-type checks, as one route guard.

Each handler under /v1 declares ``opt={"scope": ..., "accepts": (...), "signed": bool}``; a handler that
declares nothing needs ``admin``, so a forgotten declaration fails closed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from api.rest.problems import ProblemError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from api.rest.state import ApiState

ANY_SCOPE = "any"  # any valid key: jobs check ownership themselves


def is_loopback(host: str) -> bool:
    """Return whether ``host`` (an address, or ``localhost``) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key id (None when auth is off or for a signed URL) and its scopes."""

    key_id: str | None
    scopes: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        """Return whether this caller may act on every key's jobs and resources."""
        return "admin" in self.scopes


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Return the principal the guard attached to this request."""
    found = connection.scope.get("state", {}).get("principal")
    if not isinstance(found, Principal):
        raise ProblemError("unauthorized", "no API key")
    return found


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError("unauthorized", "the Authorization header must be `Bearer <api key>`")
    return token.strip()


def _check_signature(connection: ASGIConnection[Any, Any, Any, Any], state: ApiState) -> bool:
    """Return True when the URL carries a valid signature; raise 403 for a bad one; False when unsigned."""
    expires = connection.query_params.get("expires")
    signature = connection.query_params.get("signature")
    if expires is None and signature is None:
        return False
    try:
        expires_at = int(expires or "")
    except ValueError:
        raise ProblemError("signature-invalid", "`expires` must be a unix time") from None
    problem = state.signer.check(connection.url.path, expires_at, signature or "")
    if problem is not None:
        detail = (
            "the URL has expired; fetch the asset again for a fresh one" if problem == "signature-expired" else None
        )
        raise ProblemError(problem, detail)
    return True


def _set(connection: ASGIConnection[Any, Any, Any, Any], who: Principal) -> None:
    connection.scope.setdefault("state", {})["principal"] = who


async def api_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authenticate, authorise, rate-limit and check the content type of one request."""
    if connection.scope.get("method") == "OPTIONS":
        return  # method discovery (and CORS preflight) reveals nothing and needs no key
    if "\x00" in connection.scope["path"] or b"%00" in connection.scope.get("query_string", b""):
        raise ProblemError("validation-error", "URLs must not contain NUL characters", errors=[("url", "NUL")])
    state: ApiState = connection.app.state.api
    opt = handler.opt
    scope = str(opt.get("scope", "admin"))
    if opt.get("signed") and _check_signature(connection, state):
        _set(connection, Principal(None, ("search",)))
    elif state.settings.auth.disabled:
        client = connection.client.host if connection.client else ""
        if not is_loopback(client):
            raise ProblemError("forbidden", "authentication is disabled, so only loopback clients are served")
        _set(connection, Principal(None, ("admin",)))
    else:
        token = _bearer(connection)
        if token is None:
            raise ProblemError("unauthorized", "send `Authorization: Bearer <api key>`")
        from core.apikeys import verify_key

        info = await anyio.to_thread.run_sync(verify_key, token, state.settings)
        if info is None:
            raise ProblemError("unauthorized", "unknown or revoked API key")
        if scope != ANY_SCOPE and not info.allows(scope):
            raise ProblemError("forbidden", f"this route needs the `{scope}` scope (or `admin`)")
        _set(connection, Principal(info.id, info.scopes))
        wait = state.limiter.acquire(info.id)
        if wait > 0:
            retry = state.limiter.retry_after_header(wait)
            raise ProblemError(
                "rate-limited",
                f"over {state.limiter.per_minute} requests a minute for this key; retry in {retry} s",
                headers={"Retry-After": retry},
            )
    _check_content_type(connection, opt.get("accepts"))


def _check_content_type(connection: ASGIConnection[Any, Any, Any, Any], accepts: Any) -> None:
    if not accepts:
        return
    media_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in accepts:
        raise ProblemError(
            "unsupported-media-type",
            f"send the body as {' or '.join(accepts)}" + (f", not {media_type}" if media_type else ""),
        )
