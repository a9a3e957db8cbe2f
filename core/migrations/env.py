"""Alembic environment: runs against the connection Sensorium hands over (or the URL from settings)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

import core.db.hash_models  # noqa: F401  (its tables join Base.metadata)
from core.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from core.settings import get_settings

    engine = create_engine(get_settings().resolved_database_url())
    with engine.begin() as conn:
        _run(conn)
