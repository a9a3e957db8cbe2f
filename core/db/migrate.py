"""Apply Alembic migrations automatically, once per database, safely under concurrent first use."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_LOCK_KEY = 0x5E45_0002


def alembic_config() -> Config:
    """Return an Alembic config pointing at Sensorium's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _is_current(connection: Connection, config: Config) -> bool:
    head = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() == head


def _upgrade(connection: Connection, config: Config) -> None:
    if _is_current(connection, config):
        return
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def upgrade_to_head(engine: Engine, settings: Settings) -> None:
    """Bring the database schema to the newest revision (a no-op when it already is)."""
    config = alembic_config()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            try:
                _upgrade(connection, config)
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    from filelock import FileLock

    lock_path = settings.resolved_data_dir() / ".migrate.lock"
    with FileLock(str(lock_path)), engine.begin() as connection:
        _upgrade(connection, config)
