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
MAX_LABEL = 256  # the database's column width for collections and tags


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
    """A path resolves outside every allowed root (or cannot be resolved to tell)."""


def check_allowed(path: Path, allowed_roots: list[Path] | None) -> Path:
    """Return the resolved path (symlinks followed) if it lies under an allowed root, else raise."""
    try:
        resolved = path.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: where it leads cannot be known
        raise PathNotAllowed(f"{path} cannot be resolved: {exc}") from None
    if allowed_roots is None:
        return resolved
    for root in allowed_roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            return resolved
    raise PathNotAllowed(
        f"{path} resolves to {resolved}, outside the allowed roots "
        f"({', '.join(str(r) for r in allowed_roots) or 'none configured'}; SENSORIUM_INGEST__ALLOWED_ROOTS)"
    )


def _walk(folder: Path, exclude: Path | None = None) -> Iterator[Path | Rejected]:
    """Yield the files under ``folder`` (never under ``exclude``), and a refusal per sub-folder that could not be listed."""
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=errors.append, followlinks=False):
        yield from _unlisted(errors)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (exclude is None or Path(dirpath, d) != exclude)
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name
    yield from _unlisted(errors)


def _unlisted(errors: list[OSError]) -> Iterator[Rejected]:
    while errors:
        error = errors.pop(0)
        yield Rejected(str(error.filename), f"cannot read folder: {error.strerror or error}")


def label_problem(collection: str, tags: list[str]) -> str | None:
    """Return why a collection name or tag cannot be stored, or None when they are fine."""
    for what, value in [("collection", collection), *(("tag", tag) for tag in tags)]:
        if not value or len(value) > MAX_LABEL or "\x00" in value:
            return f"{what} {value[:40]!r} must be 1 to {MAX_LABEL} characters without NUL"
    return None


def discover(
    paths: Iterable[Path],
    allowed_roots: list[Path] | None,
    collection: str = "default",
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    exclude: Path | None = None,
) -> Iterator[Candidate | Rejected]:
    """Yield media files under the given files and folders (recursively), or why each was refused.

    ``exclude`` (the data dir, resolved) is never walked into: its thumbnails and blobs are not a library.
    """
    for raw in paths:
        try:
            resolved = check_allowed(raw, allowed_roots)
        except PathNotAllowed as exc:
            yield Rejected(str(raw), str(exc))
            continue
        if exclude is not None and resolved.is_relative_to(exclude):
            yield Rejected(str(raw), f"{resolved} is inside the data dir {exclude}, which is not ingested")
            continue
        if resolved.is_dir():
            for file in _walk(resolved, exclude):
                if isinstance(file, Rejected):
                    yield file
                else:
                    yield from _candidate(file, allowed_roots, collection, tags, metadata, explicit=False)
        elif resolved.exists():
            yield from _candidate(resolved, allowed_roots, collection, tags, metadata, explicit=True)
        else:
            yield Rejected(str(raw), "no such file or folder")


def _candidate(
    path: Path,
    allowed_roots: list[Path] | None,
    collection: str,
    tags: list[str] | None,
    metadata: dict[str, Any] | None,
    explicit: bool,
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
    yield Candidate(resolved, kind, path.name, collection, list(tags or []), dict(metadata or {}))
