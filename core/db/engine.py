"""Engines and sessions: SQLite (WAL, immediate write transactions) or PostgreSQL, migrated on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

# One key for every writer of the change log: holding it from the first change-log insert to commit makes
# sequence numbers become visible in commit order, so a reader never skips one that is still in flight.
CHANGE_LOG_LOCK_KEY = 0x5E45_0001


def _configure_sqlite(engine: Engine) -> None:
    """Use WAL, wait for locks, enforce foreign keys, and let write sessions begin IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so BEGIN can say IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def get_engine(settings: Settings | None = None) -> Engine:
    """Return the process-wide engine for the configured database, migrating it on first use."""
    settings = settings or get_settings()
    url = settings.resolved_database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            from core.db.migrate import upgrade_to_head

            upgrade_to_head(engine, settings)
            _engines[url] = engine
    return engine


def migrate_database(settings: Settings, merge_duplicates: bool) -> Engine:
    """Upgrade the schema now (merging duplicate assets when asked) and return the engine."""
    url = settings.resolved_database_url()
    with _lock:
        engine = _engines.get(url) or _create(url)
        from core.db.migrate import upgrade_to_head

        upgrade_to_head(engine, settings, merge_duplicates=merge_duplicates)
        _engines[url] = engine
    return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def dispose_engines() -> None:
    """Close every pooled connection (tests and forked workers call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    """Return a session factory bound to the configured database."""
    return sessionmaker(bind=get_engine(settings), expire_on_commit=False)


@contextmanager
def read_session(settings: Settings | None = None) -> Iterator[Session]:
    """Yield a session for reading; it is closed (never committed) afterwards."""
    session = session_factory(settings)()
    try:
        yield session
    finally:
        session.close()


@contextmanager
def write_session(settings: Settings | None = None) -> Iterator[Session]:
    """Yield a session whose transaction takes the write lock up front, committed on success."""
    session = session_factory(settings)()
    try:
        if session.get_bind().dialect.name == "sqlite":
            # A deferred SQLite transaction that reads, then writes, can fail at once with SQLITE_BUSY
            # under WAL when another writer committed meanwhile; IMMEDIATE waits for the lock instead.
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_change_log(session: Session) -> None:
    """Serialise change-log writers until this transaction ends (PostgreSQL; SQLite already is)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK_KEY})
