"""Vector backends: exact Flat and IVF (add, remove, search, recall, snapshots) and the switch between them."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from core.db.engine import read_session, write_session
from core.db.models import Asset, Segment
from core.settings import IndexSettings, Settings
from index.ingest.writer import log_changes
from index.library import claim_model
from index.vector import factory
from index.vector.flat import FlatBackend
from index.vector.gpu import gpu_count, mirror_if_available
from index.vector.ivf import IVFBackend
from index.vector.live import LiveIndex, SnapshotHeader, read_snapshot, write_snapshot
from tests.clustered_vectors import clustered_vectors, recall_at_k

DIM = 32
MODEL = "test:clustered-vectors"


def _ivf(vectors: np.ndarray, nprobe: int = 8) -> IVFBackend:
    settings = IndexSettings(ivf_threshold=1, nprobe=nprobe)
    return factory.train_ivf(vectors, len(vectors), settings)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_add_remove_search_export(kind: str) -> None:
    vectors = clustered_vectors(2000, DIM, clusters=20, seed=1)
    ids = np.arange(10_000, 12_000, dtype=np.int64)
    backend = FlatBackend(DIM) if kind == "flat" else _ivf(vectors)
    backend.add(ids, vectors)
    assert len(backend) == 2000
    scores, found = backend.search(vectors[[5, 700]], 3)
    assert found[:, 0].tolist() == [10_005, 10_700] and np.allclose(scores[:, 0], 1.0, atol=1e-5)

    gone = ids[:500]
    assert backend.remove(np.concatenate([gone, [99, 98]])) == 500  # absent ids are ignored
    assert backend.remove(gone) == 0 and len(backend) == 1500
    _, found = backend.search(vectors[[5]], 10)
    assert 10_005 not in found[0].tolist()

    exported_ids, exported = backend.export()
    order = np.argsort(exported_ids)
    assert exported_ids[order].tolist() == ids[500:].tolist()
    assert np.array_equal(exported[order], vectors[500:])


def test_ivf_recall_on_clustered_data_matches_exact() -> None:
    base = clustered_vectors(20_000, 64, clusters=200, seed=2)
    queries = clustered_vectors(200, 64, clusters=200, seed=3)
    ids = np.arange(len(base), dtype=np.int64)
    exact = FlatBackend(64)
    exact.add(ids, base)
    ivf = factory.train_ivf(base[::4], len(base), IndexSettings(ivf_threshold=1, nprobe=16))
    ivf.add(ids, base)
    assert ivf.nlist == factory.nlist_for(20_000, IndexSettings()) == 512
    _, truth = exact.search(queries, 10)
    _, found = ivf.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95
    # a very wide search (filters dropping most hits) scans enough lists to return every vector
    _, everything = ivf.search(queries[:1], len(base))
    assert (everything >= 0).all() and len(set(everything[0].tolist())) == len(base)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_snapshot_round_trip_records_backend(kind: str, tmp_path: Path) -> None:
    vectors = clustered_vectors(3000, DIM, clusters=30, seed=4)
    ids = np.arange(1, 3001, dtype=np.int64)
    backend = FlatBackend(DIM) if kind == "flat" else _ivf(vectors)
    backend.add(ids, vectors)
    path = tmp_path / "vectors.snapshot"
    write_snapshot(path, SnapshotHeader(MODEL, DIM, 42, backend.name, backend.trained_on), backend)

    loaded = read_snapshot(path, IndexSettings(nprobe=8))
    assert loaded is not None
    header, restored = loaded
    assert (header.backend, header.seq, header.trained_on) == (kind, 42, backend.trained_on)
    assert type(restored) is type(backend) and len(restored) == 3000
    assert [a.tolist() for a in restored.search(vectors[:20], 5)] == [
        b.tolist() for b in backend.search(vectors[:20], 5)
    ]
    assert restored.remove(ids[:10]) == 10 and len(restored) == 2990  # removal still works after a reload

    path.write_bytes(path.read_bytes()[:200])  # a torn file is ignored (the caller rebuilds), never trusted
    assert read_snapshot(path, IndexSettings()) is None


def test_rebuild_policy() -> None:
    settings = IndexSettings(ivf_threshold=1000)
    vectors = clustered_vectors(1200, DIM, clusters=10, seed=5)
    ivf = factory.train_ivf(vectors, 1200, settings)
    assert factory.kind_for_size(999, settings) == "flat" and factory.kind_for_size(1000, settings) == "ivf"
    assert factory.needs_rebuild(FlatBackend(DIM), 1000, settings)
    assert not factory.needs_rebuild(FlatBackend(DIM), 999, settings)
    assert not factory.needs_rebuild(ivf, 2399, settings) and factory.needs_rebuild(ivf, 2400, settings)
    assert not factory.needs_rebuild(ivf, 500, settings) and factory.needs_rebuild(ivf, 499, settings)
    assert factory.nlist_for(1_000_000, IndexSettings()) == 4096
    assert factory.nlist_for(1_000_000, IndexSettings(nlist=1000)) == 1000


def _insert(settings: Settings, vectors: np.ndarray) -> list[int]:
    with write_session(settings) as session:
        claim_model(session, MODEL)
        segments = []
        for vector in vectors:
            asset = Asset(sha256=uuid.uuid4().hex * 2, kind="image", name="synthetic", status="indexed")
            segments.append(Segment(asset=asset, kind="image", model_id=MODEL, vector=vector.tobytes()))
        session.add_all(segments)
        session.flush()
        ids = [s.id for s in segments]
        log_changes(session, ids, "add")
    return ids


def _delete(settings: Settings, ids: list[int]) -> None:
    with write_session(settings) as session:
        session.execute(delete(Segment).where(Segment.id.in_(ids)))
        log_changes(session, ids, "delete")


def _stored(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    with read_session(settings) as session:
        rows = session.execute(select(Segment.id, Segment.vector).order_by(Segment.id)).all()
    return np.array([r[0] for r in rows]), np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])


def _assert_matches_database(index: LiveIndex, settings: Settings) -> None:
    ids, vectors = index.export()
    stored_ids, stored = _stored(settings)
    assert ids.tolist() == stored_ids.tolist() and np.array_equal(vectors, stored)


def test_live_index_switches_over_the_threshold_and_back(settings: Settings, tmp_path: Path) -> None:
    index_settings = IndexSettings(ivf_threshold=1000, nprobe=8, use_gpu=False)
    snapshot = tmp_path / "vectors.snapshot"
    vectors = clustered_vectors(1300, DIM, clusters=20, seed=6)
    first = _insert(settings, vectors[:600])
    index = LiveIndex(MODEL, DIM, snapshot, index_settings)
    with read_session(settings) as session:
        index.load(session)
    assert index.backend.name == "flat" and not index.rebuilding

    second = _insert(settings, vectors[600:1300])
    with read_session(settings) as session:
        assert index.catch_up(session) == 700  # exact until the background build is ready
    assert index.wait_for_rebuild(120) and index.rebuild_error is None
    assert index.backend.name == "ivf" and index.backend.trained_on == 1300
    _assert_matches_database(index, settings)

    _delete(settings, second[:100])
    with read_session(settings) as session:
        index.catch_up(session)
    assert len(index) == 1200
    _, found = index.search(vectors[600:601], 5)
    assert second[0] not in found[0].tolist()
    _assert_matches_database(index, settings)

    saved = read_snapshot(snapshot, index_settings)  # the background build left an IVF snapshot behind
    assert saved is not None and saved[0].backend == "ivf"
    restarted = LiveIndex(MODEL, DIM, snapshot, index_settings)
    with read_session(settings) as session:
        restarted.load(session)
    assert restarted.backend.name == "ivf"
    _assert_matches_database(restarted, settings)

    _delete(settings, first + second[100:300])  # 400 left: well under the threshold, exact again
    with read_session(settings) as session:
        index.catch_up(session)
    assert index.wait_for_rebuild(120) and index.backend.name == "flat" and len(index) == 400
    _assert_matches_database(index, settings)


def test_rebuild_builds_ivf_directly_above_the_threshold(settings: Settings, tmp_path: Path) -> None:
    _insert(settings, clustered_vectors(1100, DIM, clusters=20, seed=7))
    index = LiveIndex(MODEL, DIM, tmp_path / "snapshot", IndexSettings(ivf_threshold=1000), auto_rebuild=False)
    with read_session(settings) as session:
        index.rebuild(session)
    assert index.backend.name == "ivf" and len(index) == 1100
    _assert_matches_database(index, settings)


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has GPU FAISS: the gpu-marked test covers it")
def test_gpu_faiss_is_optional_and_guarded() -> None:
    assert mirror_if_available(True) is None  # faiss-cpu, or no visible GPU: plain CPU indexes, no error
    backend = FlatBackend(DIM, use_gpu=True)
    backend.add(np.arange(3, dtype=np.int64), clustered_vectors(3, DIM, clusters=3))
    assert len(backend) == 3


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="needs faiss-gpu and a CUDA device")
def test_gpu_mirror_answers_like_the_cpu_index() -> None:
    vectors = clustered_vectors(5000, DIM, clusters=50, seed=8)
    ids = np.arange(5000, dtype=np.int64)
    trained = io.BytesIO()
    _ivf(vectors).write(trained)  # one set of lists for both, so only the device differs
    for make in (
        lambda gpu: FlatBackend(DIM, use_gpu=gpu),
        lambda gpu: IVFBackend.read(io.BytesIO(trained.getvalue()), 8, 5000, use_gpu=gpu),
    ):
        cpu, gpu = make(False), make(True)
        for backend in (cpu, gpu):
            backend.add(ids, vectors)
            assert backend.search(vectors[:1], 1)[1][0, 0] == 0  # searched once: the GPU copy exists
            backend.remove(ids[:100])
        assert np.array_equal(cpu.search(vectors[100:120], 10)[1], gpu.search(vectors[100:120], 10)[1])
        assert not np.isin(gpu.search(vectors[:20], 10)[1], ids[:100]).any()
