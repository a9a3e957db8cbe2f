"""The content-addressed blob store: atomic writes, dedup by content, and refusal of odd keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.blobs import BlobStore, sha256_file


def test_content_addressing_and_dedup(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    key = store.put_bytes(b"hello", suffix=".txt")
    digest = hashlib.sha256(b"hello").hexdigest()
    assert key == f"blobs/{digest}.txt"
    assert store.path(key) == tmp_path / "blobs" / digest[:2] / f"{digest}.txt"
    assert store.path(key).read_bytes() == b"hello"
    source = tmp_path / "src.bin"
    source.write_bytes(b"hello")
    assert store.put_file(source, suffix=".txt") == key and sha256_file(source) == digest
    assert not [p for p in (tmp_path / "blobs").rglob(".tmp-*")]
    store.delete(key)
    assert not store.exists(key)


@pytest.mark.parametrize("key", ["../etc/passwd", "blobs/../../x", "blobs/a/b", "other/abc", "blobs/", "thumbnails/.."])
def test_odd_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        BlobStore(tmp_path).path(key)
