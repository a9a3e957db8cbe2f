"""Signed, expiring URLs for asset content and thumbnails (HMAC-SHA256), so browsers need no bearer key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from core.settings import Settings

KEY_FILE = "api-signing.key"


def load_signing_key(settings: Settings) -> bytes:
    """Return the URL-signing key: the setting if given, else the data dir's key file, created on first start."""
    if settings.api.signing_key:
        return settings.api.signing_key.encode("utf-8")
    path = settings.resolved_data_dir() / KEY_FILE
    try:
        # O_EXCL makes the first of several starting workers the only writer; the others read its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
        handle.flush()
        os.fsync(handle.fileno())
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # another worker may be between O_EXCL and its write
        key = path.read_text().strip()
        if key:
            return key.encode("utf-8")
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it to have a new URL-signing key created")


class UrlSigner:
    """Signs ``<path>?expires=<unix>&signature=<hex>`` and checks such signatures."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _digest(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, now: float | None = None) -> str:
        """Return ``path`` with an expiry and signature appended as query parameters."""
        expires = int((now if now is not None else time.time()) + self.ttl_s)
        return f"{path}?expires={expires}&signature={self._digest(path, expires)}"

    def check(self, path: str, expires: int, signature: str, now: float | None = None) -> str | None:
        """Return None when the signature is valid, else ``signature-invalid`` or ``signature-expired``."""
        # Bytes, because compare_digest refuses non-ASCII str and a URL may carry anything.
        if not hmac.compare_digest(self._digest(path, expires).encode(), signature.encode("utf-8", "surrogatepass")):
            return "signature-invalid"
        if expires < (now if now is not None else time.time()):
            return "signature-expired"
        return None
