"""Content-addressed blob store under the data dir: ``blobs/ab/abcdef...`` plus ``thumbnails/``."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_no_follow(path: Path) -> int:
    """Open a file for reading without following a symlink in its last component (nor blocking on a FIFO)."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))


def sha256_and_stat(path: Path) -> tuple[str, os.stat_result]:
    """Return the sha256 of a regular file and the fstat of the very descriptor that was hashed."""
    fd = open_no_follow(path)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest(), info


def _fsync_rename(tmp: Path, dest: Path) -> None:
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, dest)


class BlobStore:
    """Stores files by the sha256 of their content; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path_for(self, key: str) -> Path:
        # Keys are produced here, but they also arrive from the database and URLs: refuse anything odd.
        prefix, _, name = key.partition("/")
        if prefix not in {"blobs", "thumbnails"} or not name or "/" in name or ".." in name:
            raise ValueError(f"invalid blob key: {key!r}")
        return self.root / prefix / name[:2] / name

    def path(self, key: str) -> Path:
        """Return the filesystem path of a stored key."""
        return self._path_for(key)

    def exists(self, key: str) -> bool:
        """Return whether a key is stored."""
        return self._path_for(key).exists()

    def _write(self, key: str, source: BinaryIO | None, data: bytes | None) -> str:
        dest = self._path_for(key)
        if dest.exists():
            # A fresh modification time tells the sweep (which spares young keys) that this key is wanted again.
            os.utime(dest)
            return key
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if data is not None:
                    out.write(data)
                elif source is not None:
                    shutil.copyfileobj(source, out, _CHUNK)
            _fsync_rename(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return key

    def put_file(self, path: Path, sha256: str | None = None, suffix: str = "") -> str:
        """Copy a file in and return its key (``blobs/<sha256><suffix>``)."""
        digest = sha256 or sha256_file(path)
        with path.open("rb") as source:
            return self._write(f"blobs/{digest}{suffix}", source, None)

    def put_bytes(self, data: bytes, suffix: str = "") -> str:
        """Store bytes and return their key."""
        digest = hashlib.sha256(data).hexdigest()
        return self._write(f"blobs/{digest}{suffix}", None, data)

    def put_thumbnail(self, name: str, data: bytes) -> str:
        """Store a thumbnail under a caller-chosen, content-derived name and return its key."""
        return self._write(f"thumbnails/{name}", None, data)

    def delete(self, key: str) -> None:
        """Remove a stored key if present."""
        self._path_for(key).unlink(missing_ok=True)

    def stored_keys(self) -> Iterator[tuple[str, float]]:
        """Yield every stored key with its modification time (temporary files excluded)."""
        for prefix in ("blobs", "thumbnails"):
            for path in sorted((self.root / prefix).glob("*/*")):
                if path.is_file() and not path.name.startswith(".tmp-"):
                    yield f"{prefix}/{path.name}", path.stat().st_mtime
