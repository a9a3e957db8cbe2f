"""Find the files to ingest: walk folders, classify by extension, enforce allowed roots."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"})


def kind_for(path: Path) -> str | None:
    """Return image, audio or video from the file extension, or None for other files."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


@dataclass
class Candidate:
    """A file to ingest and the labels it gets."""

    path: Path
    kind: str
    name: str = ""
    collection: str = "default"
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "ingested"
    blob_key: str | None = None  # set when the file lives in the blob store rather than in place

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name


@dataclass
class Rejected:
    """An input refused before reading, with the reason."""

    path: str
    reason: str


class PathNotAllowed(PermissionError):
    """A path resolves outside every allowed root."""


def check_allowed(path: Path, allowed_roots: list[Path] | None) -> Path:
    """Return the resolved path (symlinks followed) if it lies under an allowed root, else raise."""
    resolved = path.expanduser().resolve()
    if allowed_roots is None:
        return resolved
    for root in allowed_roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            return resolved
    raise PathNotAllowed(
        f"{path} resolves to {resolved}, outside the allowed roots "
        f"({', '.join(str(r) for r in allowed_roots) or 'none configured'}; SENSORIUM_INGEST__ALLOWED_ROOTS)"
    )


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def discover(
    paths: Iterable[Path],
    allowed_roots: list[Path] | None,
    collection: str = "default",
    tags: list[str] | None = None,
) -> Iterator[Candidate | Rejected]:
    """Yield media files under the given files and folders (recursively), or why each was refused."""
    for raw in paths:
        try:
            resolved = check_allowed(raw, allowed_roots)
        except PathNotAllowed as exc:
            yield Rejected(str(raw), str(exc))
            continue
        if resolved.is_dir():
            for file in _walk(resolved):
                yield from _candidate(file, allowed_roots, collection, tags, explicit=False)
        elif resolved.exists():
            yield from _candidate(resolved, allowed_roots, collection, tags, explicit=True)
        else:
            yield Rejected(str(raw), "no such file or folder")


def _candidate(
    path: Path, allowed_roots: list[Path] | None, collection: str, tags: list[str] | None, explicit: bool
) -> Iterator[Candidate | Rejected]:
    kind = kind_for(path)
    if kind is None:
        if explicit:
            yield Rejected(str(path), f"unsupported file type {path.suffix or '(no extension)'!r}")
        return
    try:
        resolved = check_allowed(path, allowed_roots)  # a symlink inside a folder may point outside
    except PathNotAllowed as exc:
        yield Rejected(str(path), str(exc))
        return
    yield Candidate(resolved, kind, path.name, collection, list(tags or []))
