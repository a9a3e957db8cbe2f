"""Settings come from SENSORIUM_* variables, nested with __, and default to the embedded mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings


def test_defaults_are_the_embedded_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path("sensorium-data") and settings.broker_url is None
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'sensorium-data' / 'sensorium.db'}"
    assert (settings.encoder.model, settings.encoder.pretrained, settings.encoder.device) == (
        "ViT-B-32",
        "laion2b_s34b_b79k",
        "auto",
    )


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SENSORIUM_ENCODER__MODEL", "tiny-clip")
    monkeypatch.setenv("SENSORIUM_INGEST__ALLOWED_ROOTS", f'["{tmp_path}"]')
    monkeypatch.setenv("SENSORIUM_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
    settings = Settings()
    assert settings.encoder.model == "tiny-clip" and settings.ingest.allowed_roots == [tmp_path]
    assert settings.resolved_database_url().startswith("postgresql+psycopg://")


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSORIUM_ENCODER__BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()
