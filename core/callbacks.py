"""Job callbacks: check a callback URL (http(s), public address), then POST the finished job, signed, with retries.

The body is the job's JSON. ``X-Sensorium-Signature: sha256=<hex>`` is HMAC-SHA256 with ``jobs.callback_secret``
over ``<X-Sensorium-Timestamp>.<body>``, so a receiver can verify the sender and reject replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from core.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sensorium-Signature"
TIMESTAMP_HEADER = "X-Sensorium-Timestamp"
EVENT_HEADER = "X-Sensorium-Event"
MAX_URL_LENGTH = 2048
ATTEMPTS = 5
BACKOFF_S = 1.0  # waits 1, 2, 4, 8 s between the five attempts
TIMEOUT_S = 10.0

_deliveries: set[threading.Thread] = set()
_deliveries_lock = threading.Lock()


class InvalidCallbackUrl(ValueError):
    """The callback URL is malformed, not http(s), or points at a private or loopback address."""


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve ({exc})") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        addresses.append(mapped or address)
    return addresses


def validate_callback_url(url: str, settings: Settings) -> str:
    """Return ``url`` if jobs may call it back, else raise InvalidCallbackUrl saying why."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidCallbackUrl(f"callback_url must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidCallbackUrl(f"callback_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidCallbackUrl(f"callback_url must be http or https, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidCallbackUrl("callback_url has no host")
    if settings.jobs.callback_secret is None:
        raise InvalidCallbackUrl(
            "callback_url needs a signing key: set SENSORIUM_JOBS__CALLBACK_SECRET (receivers verify the "
            f"{SIGNATURE_HEADER} header with it)"
        )
    if settings.jobs.allow_private_callbacks:
        return url
    for address in _addresses(parts.hostname, port):
        # is_global excludes loopback, private, link-local (cloud metadata), CGNAT, reserved and unspecified ranges.
        if not address.is_global or address.is_multicast:
            raise InvalidCallbackUrl(
                f"callback_url {parts.hostname!r} resolves to {address}, a private or loopback address; "
                "set SENSORIUM_JOBS__ALLOW_PRIVATE_CALLBACKS=true to allow it"
            )
    return url


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def deliver(url: str, payload: dict[str, Any], settings: Settings, *, backoff_s: float = BACKOFF_S) -> bool:
    """POST ``payload`` to ``url`` until a 2xx answer, at most ATTEMPTS times; return whether it arrived."""
    import httpx

    body = json.dumps(payload, separators=(",", ":")).encode()
    secret = settings.jobs.callback_secret or ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            # Checked again at send time: the name may resolve elsewhere now than at submit.
            validate_callback_url(url, settings)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                EVENT_HEADER: f"job.{payload.get('status')}",
            }
            # No redirects: a redirect could lead to an address validate_callback_url would refuse.
            response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_S, follow_redirects=False)
            if 200 <= response.status_code < 300:
                return True
            problem = f"HTTP {response.status_code}"
        except InvalidCallbackUrl as exc:
            logger.warning("callback for job %s refused: %s", payload.get("id"), exc)
            return False
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        logger.warning("callback for job %s, attempt %d/%d: %s", payload.get("id"), attempt, ATTEMPTS, problem)
        if attempt < ATTEMPTS:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return False


def deliver_in_background(url: str, payload: dict[str, Any], settings: Settings) -> threading.Thread:
    """Start deliver() on a daemon thread and return it (wait_for_deliveries() waits for all of them)."""

    def run() -> None:
        try:
            deliver(url, payload, settings)
        finally:
            with _deliveries_lock:
                _deliveries.discard(thread)

    thread = threading.Thread(target=run, name=f"callback-{str(payload.get('id'))[:8]}", daemon=True)
    with _deliveries_lock:  # started under the lock, so wait_for_deliveries() never joins an unstarted thread
        _deliveries.add(thread)
        thread.start()
    return thread


def wait_for_deliveries(timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for callbacks still being delivered (a CLI does this before exiting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _deliveries_lock:
            pending = list(_deliveries)
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pending[0].join(remaining)
