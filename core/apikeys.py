"""API keys: create, verify, list and revoke; only the sha256 of each secret is stored."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from core.db.engine import read_session, write_session
from core.db.models import ApiKey, utcnow
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

SCOPES = ("search", "generate", "ingest", "admin")
SECRET_PREFIX = "sk-sens-"
# Recording every use would turn each read request into a write; once a minute is enough to see idle keys.
_LAST_USED_GRANULARITY = timedelta(minutes=1)


class UnknownScope(ValueError):
    """A scope name outside SCOPES."""


class KeyNotFound(LookupError):
    """No API key has this id."""


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key (never its secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def allows(self, scope: str) -> bool:
        """Return whether this key may use ``scope`` (``admin`` implies every scope)."""
        return not self.revoked and ("admin" in self.scopes or scope in self.scopes)


@dataclass(frozen=True)
class CreatedKey:
    """A new key with its secret, which is shown once and never stored."""

    info: KeyInfo
    secret: str


def hash_secret(secret: str) -> str:
    """Return the hex sha256 under which a secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.last_used_at, row.revoked)


def normalize_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Return the scopes deduplicated in canonical order, or raise UnknownScope."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise UnknownScope(f"unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
    if not scopes:
        raise UnknownScope(f"give at least one scope: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in scopes)


def create_key(name: str, scopes: Sequence[str], settings: Settings | None = None) -> CreatedKey:
    """Create a key and return it with its secret (the only time the secret exists outside the caller)."""
    name = name.strip()
    if not name or len(name) > 256:
        raise ValueError("key name must be 1 to 256 characters")
    canonical = normalize_scopes(scopes)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with write_session(settings or get_settings()) as session:
        row = ApiKey(name=name, secret_sha256=hash_secret(secret), scopes=list(canonical))
        session.add(row)
        session.flush()
        info = _info(row)
    return CreatedKey(info, secret)


def verify_key(secret: str, settings: Settings | None = None) -> KeyInfo | None:
    """Return the key a secret belongs to if it exists and is not revoked, else None."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 256:
        return None
    settings = settings or get_settings()
    digest = hash_secret(secret)
    with read_session(settings) as session:
        row = session.execute(select(ApiKey).where(ApiKey.secret_sha256 == digest)).scalar_one_or_none()
        if row is None or row.revoked:
            return None
        info = _info(row)
    now = utcnow()
    last = info.last_used_at
    if last is None or now - last > _LAST_USED_GRANULARITY:
        # In the background: a write may wait for another writer's lock, and a request must never wait for it.
        threading.Thread(target=_touch, args=(info.id, now, settings), daemon=True).start()
    return info


def _touch(key_id: str, when: datetime, settings: Settings) -> None:
    try:
        with write_session(settings) as session:
            session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
    except SQLAlchemyError:
        log.warning("could not record the last use of API key %s", key_id, exc_info=True)


def list_keys(settings: Settings | None = None) -> list[KeyInfo]:
    """Return every key, oldest first, revoked ones included."""
    with read_session(settings or get_settings()) as session:
        rows = session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars().all()
        return [_info(row) for row in rows]


def get_key(key_id: str, settings: Settings | None = None) -> KeyInfo:
    """Return one key by id, or raise KeyNotFound."""
    with read_session(settings or get_settings()) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise KeyNotFound(f"no API key with id {key_id!r}")
        return _info(row)


def revoke_key(key_id: str, settings: Settings | None = None) -> KeyInfo:
    """Revoke a key (idempotent) and return it; raise KeyNotFound for an unknown id."""
    with write_session(settings or get_settings()) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise KeyNotFound(f"no API key with id {key_id!r}")
        row.revoked = True
        session.flush()
        return _info(row)
