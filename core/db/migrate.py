"""Apply Alembic migrations automatically, once per database, safely under concurrent first use.

An automatic upgrade never merges duplicate assets: that waits for `sensorium migrate`, after a backup. A process
whose code is older than the database's schema refuses to run rather than write rows it does not understand.
"""

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
MERGE_FLAG = "merge_duplicates"  # read by the migration that merges duplicate assets


class SchemaTooNew(RuntimeError):
    """The database was migrated by newer code than this process runs."""


def alembic_config(merge_duplicates: bool = False) -> Config:
    """Return an Alembic config pointing at Sensorium's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes[MERGE_FLAG] = merge_duplicates
    return config


def current_revision(connection: Connection) -> str | None:
    """Return the database's schema revision (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """Return the newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def check_not_newer(connection: Connection) -> None:
    """Raise SchemaTooNew when the database's revision is unknown to this code (it was migrated by newer code)."""
    revision = current_revision(connection)
    if revision is None:
        return
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in known:
        raise SchemaTooNew(
            f"the database schema is at revision {revision!r}, newer than this code knows (head {head_revision()!r}); "
            "upgrade Sensorium on this machine before starting it (see deploy/README.md, 'Upgrading')"
        )


def _upgrade(connection: Connection, config: Config) -> None:
    check_not_newer(connection)
    if current_revision(connection) == head_revision():
        return
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def upgrade_to_head(engine: Engine, settings: Settings, merge_duplicates: bool = False) -> None:
    """Bring the database schema to the newest revision (a no-op when it already is)."""
    config = alembic_config(merge_duplicates)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            try:
                _upgrade(connection, config)
                connection.commit()
            except BaseException:
                connection.rollback()  # a refused or failed migration leaves nothing half done
                raise
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    from filelock import FileLock

    lock_path = settings.resolved_data_dir() / ".migrate.lock"
    with FileLock(str(lock_path)), engine.connect() as connection:
        # Rebuilding a table (SQLite's way to drop a column) drops the old one, and with foreign keys on that
        # would cascade-delete every child row. The pragma only takes effect outside a transaction.
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                _upgrade(connection, config)
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
