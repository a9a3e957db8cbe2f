"""Read-only figures about the database for health checks and metrics (the API reads them through here)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from core.db.engine import read_session
from core.db.models import Asset, Job, utcnow
from core.jobs import META_KEY
from core.settings import Settings


class StatusUnavailable(RuntimeError):
    """The database could not be read (the figures are left out, not guessed)."""


def database_check(settings: Settings) -> str:
    """Return "ok" when a trivial query succeeds, else the error in one short line."""
    try:
        with read_session(settings) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # readiness reports any failure instead of raising
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def job_counts(settings: Settings) -> list[tuple[str, str | None, int]]:
    """Return (status, queue, count) for every job in the database (queue None: the runner's default)."""
    queue = Job.params[(META_KEY, "queue")].as_string()
    try:
        with read_session(settings) as session:
            rows = session.execute(select(Job.status, queue, func.count()).group_by(Job.status, queue)).all()
    except SQLAlchemyError as exc:
        raise StatusUnavailable(str(exc)) from exc
    return [(status, name, count) for status, name, count in rows]


def assets_created_since(settings: Settings, seconds: float) -> dict[str, int]:
    """Return how many assets were created in the last ``seconds``, by status."""
    since = utcnow() - timedelta(seconds=seconds)
    try:
        with read_session(settings) as session:
            rows = session.execute(
                select(Asset.status, func.count()).where(Asset.created_at >= since).group_by(Asset.status)
            ).all()
    except SQLAlchemyError as exc:
        raise StatusUnavailable(str(exc)) from exc
    return {status: count for status, count in rows}
