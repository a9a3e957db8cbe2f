"""Which model the library's vectors come from, and the refusal to mix models."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db.models import LibraryState

MODEL_KEY = "model_id"


class ModelMismatchError(RuntimeError):
    """The database holds vectors from another model than the one configured."""


def stored_model_id(session: Session) -> str | None:
    """Return the model id recorded for the library, if any."""
    row = session.get(LibraryState, MODEL_KEY)
    return row.value if row else None


def mismatch_message(stored: str, configured: str) -> str:
    """Return the refusal text shown when models differ."""
    return (
        f"The library's vectors were made by {stored!r}, but this process is configured for {configured!r}; "
        "mixing them would make scores meaningless. Run `sensorium reindex --reembed` to re-encode every asset "
        "with the configured model, or restore the previous SENSORIUM_ENCODER__* settings."
    )


def check_model(session: Session, model_id: str) -> None:
    """Raise ModelMismatchError when the library was built with another model."""
    stored = stored_model_id(session)
    if stored is not None and stored != model_id:
        raise ModelMismatchError(mismatch_message(stored, model_id))


def claim_model(session: Session, model_id: str) -> None:
    """Record the model for a library that has none yet; refuse a different one (safe when processes race)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    session.execute(insert(LibraryState).values(key=MODEL_KEY, value=model_id).on_conflict_do_nothing())
    stored = stored_model_id(session)
    if stored != model_id:
        raise ModelMismatchError(mismatch_message(stored or "?", model_id))


def set_model(session: Session, model_id: str) -> None:
    """Record a new model for the library (only ``reindex --reembed`` does this)."""
    row = session.get(LibraryState, MODEL_KEY)
    if row is None:
        session.add(LibraryState(key=MODEL_KEY, value=model_id))
    else:
        row.value = model_id
