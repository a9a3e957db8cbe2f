"""Query vectors: the per-process cache and micro-batching give exactly what the encoder gives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.settings import EncoderSettings, Settings
from index.encoders import get_encoder
from index.encoders.batcher import TextBatcher
from index.encoders.queries import QueryCache, QueryEncoder, normalised_query
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchRequest, search
from tests.media_images import write_images

TINY = EncoderSettings(model="tiny-clip", pretrained="none")
QUERIES = [f"a photo of {word} number {i}" for i, word in enumerate(["dogs", "cats", "cars", "boats"] * 2)]


def test_cache_returns_identical_vectors_and_skips_the_encoder() -> None:
    encoder = get_encoder(TINY)
    queries = QueryEncoder(encoder, TINY.model_copy(update={"query_cache_size": 2}))
    first = queries.encode("a red  car\n")
    assert np.array_equal(first, encoder.encode_texts(["a red car"]))
    again = queries.encode("  a red car ")  # the same query once normalised: served from the cache
    assert np.array_equal(first, again) and queries.cache.hits == 1
    again[0, 0] = 42.0  # callers get copies: nothing they do reaches the cache
    assert np.array_equal(queries.encode("a red car"), first)
    queries.encode("a dog")
    queries.encode("a cat")  # size 2: the least recently used ("a red car") goes
    hits = queries.cache.hits
    queries.encode("a red car")
    assert queries.cache.hits == hits


def test_cache_keys_on_model_id_and_normalised_text() -> None:
    cache = QueryCache(4)
    cache.put(("model-a", normalised_query("A  dog")), np.ones(3, dtype=np.float32))
    assert cache.get(("model-a", "A dog")) is not None
    assert cache.get(("model-b", "A dog")) is None and cache.get(("model-a", "a dog")) is None
    assert QueryCache(0).get(("m", "x")) is None


def test_micro_batched_vectors_equal_unbatched_ones() -> None:
    encoder = get_encoder(TINY)
    batcher = TextBatcher(encoder.encode_texts, wait_s=0.05, max_batch=32)
    start = threading.Barrier(len(QUERIES))

    def one(text: str) -> np.ndarray:
        start.wait()
        return batcher.encode(text)

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        batched = list(pool.map(one, QUERIES))
    alone = [encoder.encode_texts([text])[0] for text in QUERIES]
    assert np.allclose(np.stack(batched), np.stack(alone), atol=1e-5)
    assert batcher.batches < len(QUERIES)  # they really shared batches


def test_a_failing_batch_fails_each_caller_and_the_batcher_goes_on() -> None:
    def encode(texts: list[str]) -> np.ndarray:
        if "bad" in texts:
            raise ValueError("cannot encode")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = TextBatcher(encode, wait_s=0.001, max_batch=4)
    with pytest.raises(ValueError, match="cannot encode"):
        batcher.encode("bad")
    assert batcher.encode("good").tolist() == [1.0, 1.0]


def test_micro_batched_search_equals_unbatched(settings: Settings) -> None:
    library = settings.data_dir.parent / "library"
    write_images(library, 6)
    assert ingest(discover([library], None), settings).indexed == 6
    plain = settings.model_copy(update={"encoder": settings.encoder.model_copy(update={"query_cache_size": 0})})

    def run(text: str, micro_batch: bool) -> list[tuple[str, float]]:
        results = search(SearchRequest(text=text, mode="vector", micro_batch=micro_batch), plain)
        return [(r.asset_id, float("nan") if r.score is None else r.score) for r in results]

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        batched = list(pool.map(lambda text: run(text, True), QUERIES))
    for text, got in zip(QUERIES, batched, strict=True):
        want = run(text, False)
        assert [a for a, _ in got] == [a for a, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
