"""A process's in-memory index, caught up from the database's change log before each search."""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVarTuple

import numpy as np
from sqlalchemy import Engine, Row, Select, func, select
from sqlalchemy.orm import Session

from core.db.models import Asset, ChangeLog, Segment
from core.settings import IndexSettings, get_settings
from index.library import check_model
from index.vector import factory
from index.vector.base import VectorBackend

log = logging.getLogger(__name__)

_Ts = TypeVarTuple("_Ts")
_MAGIC = b"SNSRIDX1"
_PAGE = 20_000
_ID_CHUNK = 900  # below SQLite's bound-parameter limits on old builds
_RETRY_FAILED_REBUILD_S = 300.0


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot file says about itself: model, position in the change log, backend and its sizing."""

    model_id: str
    dim: int
    seq: int
    backend: str
    trained_on: int = 0


def vectors_from_bytes(blobs: list[bytes], dim: int) -> np.ndarray:
    """Return stored vector bytes as a (n, dim) float32 array."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def write_snapshot(path: Path, header: SnapshotHeader, backend: VectorBackend) -> None:
    """Atomically write a snapshot: temp file, fsync, rename (callers hold the snapshot lock)."""
    meta = json.dumps(asdict(header)).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_MAGIC + struct.pack("<Q", len(meta)) + meta)
            backend.write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def read_snapshot(path: Path, settings: IndexSettings) -> tuple[SnapshotHeader, VectorBackend] | None:
    """Return the snapshot's header and backend, or None if absent or unreadable."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        if handle.read(len(_MAGIC)) != _MAGIC:
            log.warning("ignoring snapshot %s: not a Sensorium index file", path)
            return None
        try:
            (meta_len,) = struct.unpack("<Q", handle.read(8))
            header = SnapshotHeader(**json.loads(handle.read(meta_len)))
            return header, factory.read_backend(header.backend, handle, header.trained_on, settings)
        except (ValueError, TypeError, RuntimeError, struct.error) as exc:
            log.warning("ignoring unreadable snapshot %s: %s", path, exc)
            return None


def _apply_entries(
    session: Session, backend: VectorBackend, entries: Sequence[Row[int, int, str]], model_id: str
) -> None:
    # Entries are applied in runs of the same operation so their order is kept exactly.
    run: list[int] = []
    run_op = entries[0][2]
    for _, segment_id, op in entries:
        if op != run_op:
            _apply_run(session, backend, run_op, run, model_id)
            run, run_op = [], op
        run.append(segment_id)
    _apply_run(session, backend, run_op, run, model_id)


def _live_segments(statement: Select[*_Ts]) -> Select[*_Ts]:
    """Restrict a segment query to assets outside the trash (their vectors left the index)."""
    return statement.join(Asset, Segment.asset_id == Asset.id).where(Asset.trashed_at.is_(None))


def _apply_run(session: Session, backend: VectorBackend, op: str, segment_ids: list[int], model_id: str) -> None:
    ids = np.array(segment_ids, dtype=np.int64)
    if op == "delete":
        backend.remove(ids)
        return
    # A segment added and deleted since our position is simply gone from the table: nothing to add.
    rows = session.execute(
        _live_segments(select(Segment.id, Segment.vector)).where(
            Segment.id.in_(segment_ids), Segment.model_id == model_id
        )
    ).all()
    if rows:
        present = np.array([r[0] for r in rows], dtype=np.int64)
        backend.remove(present)  # replaying an addition the backend already holds must not duplicate it
        backend.add(present, vectors_from_bytes([r[1] for r in rows], backend.dim))


def replay(session: Session, backend: VectorBackend, seq: int, model_id: str) -> tuple[int, int]:
    """Apply change-log entries past ``seq`` to ``backend``; return the new position and how many applied."""
    applied = 0
    while True:
        entries = session.execute(
            select(ChangeLog.seq, ChangeLog.segment_id, ChangeLog.op)
            .where(ChangeLog.seq > seq)
            .order_by(ChangeLog.seq)
            .limit(_PAGE)
        ).all()
        if not entries:
            return seq, applied
        _apply_entries(session, backend, entries, model_id)
        seq, applied = entries[-1][0], applied + len(entries)


def _snapshot_bind(bind: Engine) -> Engine:
    if bind.dialect.name == "postgresql":
        # READ COMMITTED would give each statement its own snapshot; the position must match the vectors.
        return bind.execution_options(isolation_level="REPEATABLE READ")
    return bind  # SQLite: one read transaction under WAL already sees one snapshot


def _vectors_for(session: Session, ids: np.ndarray, dim: int) -> np.ndarray:
    out = np.empty((len(ids), dim), dtype=np.float32)
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK].tolist()
        rows = dict(session.execute(select(Segment.id, Segment.vector).where(Segment.id.in_(chunk))).tuples().all())
        out[start : start + len(chunk)] = vectors_from_bytes([rows[i] for i in chunk], dim)
    return out


def build_backend(bind: Engine, model_id: str, dim: int, settings: IndexSettings) -> tuple[VectorBackend, int]:
    """Build the backend the stored vectors call for (exact or IVF); return it with its change-log position."""
    with Session(_snapshot_bind(bind)) as snapshot:
        seq = int(snapshot.execute(select(func.coalesce(func.max(ChangeLog.seq), 0))).scalar_one())
        ids = np.fromiter(
            snapshot.execute(
                _live_segments(select(Segment.id)).where(Segment.model_id == model_id).order_by(Segment.id)
            ).scalars(),
            dtype=np.int64,
        )
        backend: VectorBackend
        if factory.kind_for_size(len(ids), settings) == factory.IVF:
            nlist = factory.nlist_for(len(ids), settings)
            rng = np.random.default_rng(0)
            sample_ids = np.sort(rng.choice(ids, factory.training_size(len(ids), nlist), replace=False))
            backend = factory.train_ivf(_vectors_for(snapshot, sample_ids, dim), len(ids), settings)
        else:
            backend = factory.empty_exact(dim, settings)
        for start in range(0, len(ids), _PAGE):
            page = ids[start : start + _PAGE]
            rows = snapshot.execute(
                _live_segments(select(Segment.vector))
                .where(Segment.id >= int(page[0]), Segment.id <= int(page[-1]), Segment.model_id == model_id)
                .order_by(Segment.id)
            ).scalars()
            backend.add(page, vectors_from_bytes(list(rows), dim))
    return backend, seq


class LiveIndex:
    """The FAISS index of one process plus the change-log position it reflects.

    When the library crosses the IVF threshold (or outgrows its IVF lists), a background thread builds the
    right backend from the stored vectors and swaps it in; searches keep using the current one meanwhile.
    """

    def __init__(
        self,
        model_id: str,
        dim: int,
        snapshot_path: Path,
        settings: IndexSettings | None = None,
        auto_rebuild: bool = True,
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self.snapshot_path = snapshot_path
        self.settings = settings or get_settings().index
        self.auto_rebuild = auto_rebuild
        self.backend: VectorBackend = factory.empty_exact(dim, self.settings)
        self.seq = 0
        self.rebuild_error: BaseException | None = None
        self._lock = threading.RLock()
        self._rebuilder: threading.Thread | None = None
        self._next_rebuild_at = 0.0

    def __len__(self) -> int:
        return len(self.backend)

    def load(self, session: Session) -> None:
        """Start from the snapshot when it matches this model, else rebuild; then catch up."""
        check_model(session, self.model_id)
        snapshot = read_snapshot(self.snapshot_path, self.settings)
        with self._lock:
            if snapshot and snapshot[0].model_id == self.model_id and snapshot[0].dim == self.dim:
                header, self.backend = snapshot
                self.seq = header.seq
            else:
                self.rebuild(session)
        self.catch_up(session)

    def rebuild(self, session: Session) -> None:
        """Rebuild the whole index from stored vectors, choosing exact or IVF by the library's size."""
        backend, seq = build_backend(_engine_of(session), self.model_id, self.dim, self.settings)
        with self._lock:
            self.backend, self.seq = backend, seq

    def catch_up(self, session: Session) -> int:
        """Apply change-log entries past our position (additions and deletions); return how many."""
        check_model(session, self.model_id)
        with self._lock:
            self.seq, applied = replay(session, self.backend, self.seq, self.model_id)
            grown = self.auto_rebuild and factory.needs_rebuild(self.backend, len(self.backend), self.settings)
        if grown:
            self._start_rebuild(_engine_of(session))
        return applied

    def _start_rebuild(self, bind: Engine) -> None:
        with self._lock:
            if (self._rebuilder and self._rebuilder.is_alive()) or time.monotonic() < self._next_rebuild_at:
                return
            self._rebuilder = threading.Thread(
                target=self._rebuild_in_background, args=(bind,), name="index-rebuild", daemon=True
            )
            self._rebuilder.start()

    def _rebuild_in_background(self, bind: Engine) -> None:
        try:
            started = time.perf_counter()
            backend, seq = build_backend(bind, self.model_id, self.dim, self.settings)
            with Session(bind) as session:
                seq, _ = replay(session, backend, seq, self.model_id)  # the bulk of the gap, searches still run
            self._write_snapshot(
                SnapshotHeader(self.model_id, self.dim, seq, backend.name, backend.trained_on), backend
            )
            # A new session: on SQLite the first one's read transaction would not see entries committed since.
            with Session(bind) as session, self._lock:
                seq, _ = replay(session, backend, seq, self.model_id)  # the last few, then swap atomically
                self.backend, self.seq = backend, seq
            log.info(
                "index rebuilt as %s over %d vectors in %.1f s",
                backend.name,
                len(backend),
                time.perf_counter() - started,
            )
        except Exception as exc:  # the current backend stays correct; try again later
            log.warning("background index rebuild failed: %s", exc, exc_info=True)
            self.rebuild_error = exc
            self._next_rebuild_at = time.monotonic() + _RETRY_FAILED_REBUILD_S

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild in progress; return True once none is running."""
        thread = self._rebuilder
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def rebuilding(self) -> bool:
        """Return whether a background rebuild is running."""
        return self._rebuilder is not None and self._rebuilder.is_alive()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return top-k (scores, segment ids) per query from the in-memory index."""
        with self._lock:
            if not len(self.backend):
                n = len(queries)
                return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
            return self.backend.search(queries, k)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, vectors) held, sorted by id (for comparing indexes)."""
        with self._lock:
            ids, vectors = self.backend.export()
        order = np.argsort(ids, kind="stable")
        return ids[order], vectors[order]

    def _write_snapshot(self, header: SnapshotHeader, backend: VectorBackend) -> None:
        from filelock import FileLock

        with FileLock(str(self.snapshot_path) + ".lock"):
            write_snapshot(self.snapshot_path, header, backend)

    def save(self) -> None:
        """Write a snapshot of the current state under the snapshot file lock."""
        with self._lock:
            header = SnapshotHeader(self.model_id, self.dim, self.seq, self.backend.name, self.backend.trained_on)
            self._write_snapshot(header, self.backend)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine
