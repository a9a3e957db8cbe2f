"""Job callbacks: check a callback URL (http(s), public address), and POST a finished job to it, signed.

The body is the job's JSON. ``X-Sensorium-Signature: sha256=<hex>`` is HMAC-SHA256 with ``jobs.callback_secret``
over ``<X-Sensorium-Timestamp>.<body>``, so a receiver can verify the sender and reject replays of old deliveries.

The host is resolved once per attempt and every address it resolves to is checked, including IPv4 addresses
embedded in IPv6 ones (mapped, compatible, translated, NAT64, 6to4, Teredo); the request then connects to the
address that was checked (Host header and TLS server name stay the URL's), so a name that resolves elsewhere a
moment later (DNS rebinding) cannot redirect it. Deliveries and their retries live in core/outbox.py.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sensorium-Signature"
TIMESTAMP_HEADER = "X-Sensorium-Timestamp"
EVENT_HEADER = "X-Sensorium-Event"
MAX_URL_LENGTH = 2048
TIMEOUT_S = 10.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 ranges whose last 32 bits are an IPv4 address: IPv4-compatible (deprecated), IPv4-translated (SIIT), NAT64.
_LOW_32_EMBEDS = tuple(ipaddress.IPv6Network(net) for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# Local-use NAT64 (RFC 8215): the IPv4 part's place depends on the operator's prefix length; never public.
_NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"),)


class InvalidCallbackUrl(ValueError):
    """The callback URL is malformed, not http(s), or points at a private or loopback address."""


def embedded_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in net for net in _LOW_32_EMBEDS):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IpAddress) -> bool:
    """Return True when a callback may reach ``address``: global, not multicast, and so is every IPv4 it embeds."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in _NEVER_PUBLIC):
        return False
    return all(v4.is_global and not v4.is_multicast for v4 in embedded_ipv4(address))


@dataclass(frozen=True)
class Target:
    """A checked callback URL: where to connect (the address that was checked) and what to call the host."""

    url: str
    host: str
    port: int
    address: str

    def pinned_url(self) -> str:
        """Return the URL with its host replaced by the checked address (the request connects there)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))

    def host_header(self) -> str:
        """Return the Host header the URL implies."""
        default = 443 if self.url.startswith("https:") else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _parse(url: str, settings: Settings) -> tuple[str, int]:
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
    if parts.username is not None or parts.password is not None:
        raise InvalidCallbackUrl("callback_url may not carry a user name or password")
    if settings.jobs.callback_secret is None:
        raise InvalidCallbackUrl(
            "callback_url needs a signing key: set SENSORIUM_JOBS__CALLBACK_SECRET (receivers verify the "
            f"{SIGNATURE_HEADER} header with it)"
        )
    return parts.hostname, port


def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve ({exc})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_callback_url(url: str, settings: Settings) -> Target:
    """Resolve the URL's host once, check every address; return where to connect, or raise InvalidCallbackUrl."""
    host, port = _parse(url, settings)
    addresses = _resolve(host, port)
    if not settings.jobs.allow_private_callbacks:
        for address in addresses:
            # is_global excludes loopback, private, link-local (cloud metadata), CGNAT, reserved, unspecified.
            if not is_public(address):
                raise InvalidCallbackUrl(
                    f"callback_url {host!r} resolves to {address}, a private or loopback address (or one that "
                    "embeds such an IPv4 address); set SENSORIUM_JOBS__ALLOW_PRIVATE_CALLBACKS=true to allow it"
                )
    if not addresses:
        raise InvalidCallbackUrl(f"callback_url host {host!r} has no address")
    return Target(url, host, port, str(addresses[0]))


def validate_callback_url(url: str, settings: Settings) -> str:
    """Return ``url`` if jobs may call it back, else raise InvalidCallbackUrl saying why."""
    check_callback_url(url, settings)
    return url


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class Sent:
    """How one POST went: ``delivered``, or else whether another attempt may help, and what went wrong."""

    delivered: bool
    retry: bool
    problem: str = ""


def post_once(url: str, payload: dict[str, Any], settings: Settings) -> Sent:
    """POST the signed payload to ``url`` once, connecting to the address checked just now."""
    import httpx

    try:
        target = check_callback_url(url, settings)
    except InvalidCallbackUrl as exc:
        return Sent(False, False, str(exc))
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Host": target.host_header(),
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(settings.jobs.callback_secret or "", timestamp, body),
        EVENT_HEADER: f"job.{payload.get('status')}",
    }
    try:
        # No redirects: a redirect could lead to an address check_callback_url would refuse.
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
            response = client.post(
                target.pinned_url(), content=body, headers=headers, extensions={"sni_hostname": target.host}
            )
    except httpx.HTTPError as exc:
        return Sent(False, True, f"{type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Sent(True, False)
    return Sent(False, True, f"HTTP {response.status_code}")
