"""`sensorium migrate`: bring the database schema up to date, merging duplicate assets, after a backup."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from core.db.engine import migrate_database
from core.db.migrate import SchemaTooNew, current_revision, head_revision

__all__ = ["SchemaTooNew", "SchemaState", "backup_advice", "backup_sqlite", "migrate", "schema_state"]
from core.settings import Settings


@dataclass
class SchemaState:
    """Where the database stands: its revision, this code's newest one, and the duplicate assets it holds."""

    revision: str | None
    head: str
    duplicates: int
    dialect: str

    @property
    def current(self) -> bool:
        """Return whether nothing is left to migrate."""
        return self.revision == self.head


def schema_state(settings: Settings) -> SchemaState:
    """Inspect the database without changing it."""
    engine = create_engine(settings.resolved_database_url())
    try:
        with engine.connect() as connection:
            duplicates = 0
            if inspect(connection).has_table("assets"):
                duplicates = int(
                    connection.execute(text("SELECT COUNT(*) - COUNT(DISTINCT sha256) FROM assets")).scalar_one()
                )
            return SchemaState(current_revision(connection), head_revision(), duplicates, engine.dialect.name)
    finally:
        engine.dispose()


def backup_advice(state: SchemaState, settings: Settings) -> str:
    """Return how to back this database up before merging."""
    if state.dialect == "sqlite":
        return (
            "Back up first: `sensorium migrate --backup FILE` copies the SQLite database consistently, "
            f"or copy {settings.resolved_data_dir() / 'sensorium.db'} while no server or worker runs."
        )
    return "Back up first: `pg_dump --format=custom --file=sensorium-before-merge.dump DATABASE_URL`."


def backup_sqlite(settings: Settings, destination: Path) -> Path:
    """Copy the SQLite database to ``destination`` with SQLite's online backup (consistent while in use)."""
    url = settings.resolved_database_url()
    if not url.startswith("sqlite:///"):
        raise ValueError("--backup copies SQLite databases only; back up PostgreSQL with pg_dump")
    if destination.exists():
        raise FileExistsError(f"{destination} exists; choose a new file")
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    target = sqlite3.connect(destination)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return destination


def migrate(settings: Settings) -> SchemaState:
    """Upgrade the schema to this code's newest revision, merging duplicate assets; return the new state."""
    migrate_database(settings, merge_duplicates=True)
    return schema_state(settings)
