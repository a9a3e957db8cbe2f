"""A process's in-memory index, caught up from the database's change log before each search."""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from core.db.models import ChangeLog, Segment
from index.library import check_model
from index.vector.base import VectorBackend
from index.vector.flat import FlatBackend

log = logging.getLogger(__name__)

_MAGIC = b"SNSRIDX1"
_CATCH_UP_PAGE = 20_000


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot file says about itself."""

    model_id: str
    dim: int
    seq: int
    backend: str


def vectors_from_bytes(blobs: list[bytes], dim: int) -> np.ndarray:
    """Return stored vector bytes as a (n, dim) float32 array."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def _backend_from(header: SnapshotHeader, payload: bytes) -> VectorBackend:
    return FlatBackend.deserialize(payload)


def write_snapshot(path: Path, header: SnapshotHeader, backend: VectorBackend) -> None:
    """Atomically write a snapshot: temp file, fsync, rename (callers hold the snapshot lock)."""
    meta = json.dumps(header.__dict__).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_MAGIC + struct.pack("<Q", len(meta)) + meta)
            out.write(backend.serialize())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def read_snapshot(path: Path) -> tuple[SnapshotHeader, VectorBackend] | None:
    """Return the snapshot's header and backend, or None if absent or unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(_MAGIC):
        log.warning("ignoring snapshot %s: not a Sensorium index file", path)
        return None
    (meta_len,) = struct.unpack("<Q", data[8:16])
    try:
        header = SnapshotHeader(**json.loads(data[16 : 16 + meta_len]))
        return header, _backend_from(header, data[16 + meta_len :])
    except (ValueError, TypeError, RuntimeError) as exc:
        log.warning("ignoring unreadable snapshot %s: %s", path, exc)
        return None


class LiveIndex:
    """The FAISS index of one process plus the change-log position it reflects."""

    def __init__(self, model_id: str, dim: int, snapshot_path: Path) -> None:
        self.model_id = model_id
        self.dim = dim
        self.snapshot_path = snapshot_path
        self.backend: VectorBackend = FlatBackend(dim)
        self.seq = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.backend)

    def load(self, session: Session) -> None:
        """Start from the snapshot when it matches this model, else rebuild; then catch up."""
        check_model(session, self.model_id)
        snapshot = read_snapshot(self.snapshot_path)
        with self._lock:
            if snapshot and snapshot[0].model_id == self.model_id and snapshot[0].dim == self.dim:
                header, self.backend = snapshot
                self.seq = header.seq
            else:
                self.rebuild(session)
        self.catch_up(session)

    def rebuild(self, session: Session) -> None:
        """Rebuild the whole index from stored vectors, reading position and vectors from one snapshot."""
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            # READ COMMITTED would give each statement its own snapshot; the position must match the vectors.
            bind = bind.execution_options(isolation_level="REPEATABLE READ")
        backend = FlatBackend(self.dim)
        with Session(bind) as snapshot:
            seq = snapshot.execute(select(func.coalesce(func.max(ChangeLog.seq), 0))).scalar_one()
            last_id = -1
            while True:
                rows = snapshot.execute(
                    select(Segment.id, Segment.vector)
                    .where(Segment.id > last_id, Segment.model_id == self.model_id)
                    .order_by(Segment.id)
                    .limit(_CATCH_UP_PAGE)
                ).all()
                if not rows:
                    break
                ids = np.array([r[0] for r in rows], dtype=np.int64)
                backend.add(ids, vectors_from_bytes([r[1] for r in rows], self.dim))
                last_id = rows[-1][0]
        with self._lock:
            self.backend, self.seq = backend, int(seq)

    def catch_up(self, session: Session) -> int:
        """Apply change-log entries past our position (additions and deletions); return how many."""
        check_model(session, self.model_id)
        applied = 0
        while True:
            entries = session.execute(
                select(ChangeLog.seq, ChangeLog.segment_id, ChangeLog.op)
                .where(ChangeLog.seq > self.seq)
                .order_by(ChangeLog.seq)
                .limit(_CATCH_UP_PAGE)
            ).all()
            if not entries:
                return applied
            with self._lock:
                self._apply(session, entries)
            applied += len(entries)

    def _apply(self, session: Session, entries: Sequence[Row[int, int, str]]) -> None:
        # Entries are applied in runs of the same operation so their order is kept exactly.
        run: list[int] = []
        run_op = entries[0][2]
        for _, segment_id, op in entries:
            if op != run_op:
                self._apply_run(session, run_op, run)
                run, run_op = [], op
            run.append(segment_id)
        self._apply_run(session, run_op, run)
        self.seq = entries[-1][0]

    def _apply_run(self, session: Session, op: str, segment_ids: list[int]) -> None:
        ids = np.array(segment_ids, dtype=np.int64)
        if op == "delete":
            self.backend.remove(ids)
            return
        # A segment added and deleted since our position is simply gone from the table: nothing to add.
        rows = session.execute(
            select(Segment.id, Segment.vector).where(Segment.id.in_(segment_ids), Segment.model_id == self.model_id)
        ).all()
        if rows:
            present = np.array([r[0] for r in rows], dtype=np.int64)
            self.backend.remove(present)  # re-adding after a rebuild that already saw them must not duplicate
            self.backend.add(present, vectors_from_bytes([r[1] for r in rows], self.dim))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return top-k (scores, segment ids) per query from the in-memory index."""
        with self._lock:
            if not len(self.backend):
                n = len(queries)
                return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
            return self.backend.search(queries, k)

    def save(self) -> None:
        """Write a snapshot of the current state under the snapshot file lock."""
        from filelock import FileLock

        with FileLock(str(self.snapshot_path) + ".lock"), self._lock:
            header = SnapshotHeader(self.model_id, self.dim, self.seq, self.backend.name)
            write_snapshot(self.snapshot_path, header, self.backend)
