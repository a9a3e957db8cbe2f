"""A library made by the release before the ONNX runtime (tests/fixtures/release-library.db) opens unchanged."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.engine import dispose_engines, read_session
from core.db.models import Segment
from core.settings import EncoderSettings, Settings
from index.encoders import get_encoder
from index.encoders.onnx_encoder import OnnxClipEncoder
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.library import ModelMismatchError, stored_model_id
from index.search import SearchRequest, search
from index.vector.live import vectors_from_bytes
from tests.media_images import distinct_image, write_images

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-library.db"
TINY = EncoderSettings(model="tiny-clip", pretrained="none")


@pytest.fixture
def release_library(tmp_path: Path) -> Iterator[Settings]:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(FIXTURE, data / "sensorium.db")
    yield Settings(data_dir=data, encoder=TINY)
    from index.service import forget_live_indexes

    forget_live_indexes()
    dispose_engines()


def test_release_library_searches_with_the_onnx_runtime(release_library: Settings, tmp_path: Path) -> None:
    encoder = get_encoder(release_library.encoder)
    assert isinstance(encoder, OnnxClipEncoder)  # the new default on CPU
    with read_session(release_library) as session:
        assert stored_model_id(session) == encoder.model_id  # same id: no reindex needed
        stored = vectors_from_bytes(list(session.scalars(select(Segment.vector).order_by(Segment.id))), encoder.dim)
    # The release's torch vectors and today's ONNX ones agree image by image (seeds 0-7, ingested in order).
    fresh = encoder.encode_images([distinct_image(seed) for seed in range(8)])
    assert ((stored * fresh).sum(axis=1) >= 0.999).all()
    # Query by each image: it finds itself first among the release's vectors.
    for seed in range(8):
        results = search(SearchRequest(vector=fresh[seed], limit=8, mode="vector"), release_library)
        assert len(results) == 8 and results[0].name == f"img-{seed:05d}.png"
    assert search(SearchRequest(text="a colourful picture", limit=3), release_library)
    # New files go into the same library next to the release's.
    write_images(tmp_path / "more", 2, start_seed=100)
    assert ingest(discover([tmp_path / "more"], None), release_library).indexed == 2


def test_release_library_refuses_int8_vectors(release_library: Settings, tmp_path: Path) -> None:
    digest = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    int8 = release_library.model_copy(
        update={"encoder": release_library.encoder.model_copy(update={"quantize": "int8"})}
    )
    with pytest.raises(ModelMismatchError, match="reindex --reembed"):
        search(SearchRequest(text="a dog", mode="vector"), int8)
    write_images(tmp_path / "more", 1, start_seed=100)
    with pytest.raises(ModelMismatchError):
        ingest(discover([tmp_path / "more"], None), int8)
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == digest  # the fixture itself is never touched
