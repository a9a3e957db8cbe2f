"""Shared fixtures: isolated settings per test on SQLite and, where asked, a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import EncoderSettings, OcrSettings, Settings

POSTGRES_ADMIN_URL = os.environ.get("SENSORIUM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
TINY_ENCODER = EncoderSettings(model="tiny-clip", pretrained="none", batch_size=16)
# OCR (real PP-OCR models, about 0.5 s a picture here) is off unless a test turns it on: tests/integration/test_ocr.py.
NO_OCR = OcrSettings(enabled=False)
TINY_ENV = {
    "SENSORIUM_ENCODER__MODEL": "tiny-clip",
    "SENSORIUM_ENCODER__PRETRAINED": "none",
    "SENSORIUM_OCR__ENABLED": "false",
}


def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"sensorium_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI starts PostgreSQL: an unreachable server there is a failure, not a skip
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from core.db.engine import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """Yield None (SQLite in the data dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        from core.db.engine import dispose_engines

        dispose_engines()
    else:
        yield from _postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Yield the URL of a fresh PostgreSQL database (for tests that only make sense there)."""
    yield from _postgres_database()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Iterator[Settings]:
    """Isolated settings: a temp data dir, the parametrized database, the tiny random encoder."""
    from index.service import forget_live_indexes

    yield Settings(data_dir=tmp_path / "data", database_url=database_url, encoder=TINY_ENCODER, ocr=NO_OCR)
    forget_live_indexes()


def env_for(settings: Settings) -> dict[str, str]:
    """Return an environment that makes a subprocess use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update(TINY_ENV)
    env["SENSORIUM_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["SENSORIUM_DATABASE_URL"] = settings.database_url
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env
