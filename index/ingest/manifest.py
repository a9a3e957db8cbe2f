"""JSONL manifests: one ``{"path", "collection"?, "tags"?, "metadata"?}`` per line; bad lines are reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from index.ingest.discover import Candidate, Rejected, check_allowed, discover, label_problem

FIELDS = ("path", "collection", "tags", "metadata")
MAX_LINE_BYTES = 64 * 1024  # a manifest line is a path and a few labels; longer ones are refused, not buffered


def read_manifest(
    manifest: Path, allowed_roots: list[Path] | None, collection: str = "default", tags: list[str] | None = None
) -> Iterator[Candidate | Rejected]:
    """Return the manifest's candidates (and refusals, with line numbers), read lazily line by line.

    Relative paths are taken from the manifest's folder; every path must lie under an allowed root, and so must
    the manifest itself. Raises PathNotAllowed or FileNotFoundError at once when the manifest cannot be used.
    """
    resolved = check_allowed(manifest, allowed_roots)
    if not resolved.is_file():
        raise FileNotFoundError(f"manifest not found (or not a file): {manifest}")
    return _entries(resolved, allowed_roots, collection, list(tags or []))


def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number, bytes), with None for a line over MAX_LINE_BYTES (skipped without holding it)."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(MAX_LINE_BYTES)
            yield number, None
        else:
            yield number, line


def _entries(
    manifest: Path, allowed_roots: list[Path] | None, collection: str, tags: list[str]
) -> Iterator[Candidate | Rejected]:
    with manifest.open("rb") as handle:
        for number, raw in _lines(handle):
            where = f"{manifest}:{number}"
            if raw is None:
                yield Rejected(where, f"line {number} is longer than {MAX_LINE_BYTES:,} bytes")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Rejected(where, f"line {number} is not UTF-8 text")
                continue
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Rejected(where, f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})")
                continue
            problem = _problem(entry, collection, tags)
            if problem:
                yield Rejected(where, f"line {number}: {problem}")
                continue
            yield from _candidates(entry, manifest.parent, allowed_roots, collection, tags, number)


def _problem(entry: Any, collection: str, tags: list[str]) -> str | None:
    if not isinstance(entry, dict):
        return 'expected a JSON object like {"path": "photos/a.jpg"}'
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        return f"unknown field {unknown[0]!r} (expected {', '.join(FIELDS)})"
    if "path" not in entry:
        return 'missing "path"'
    if not isinstance(entry["path"], str) or not entry["path"].strip() or "\x00" in entry["path"]:
        return '"path" must be a non-empty string'
    if not isinstance(entry.get("collection", collection), str):
        return '"collection" must be a string'
    entry_tags = entry.get("tags", [])
    if not isinstance(entry_tags, list) or not all(isinstance(tag, str) for tag in entry_tags):
        return '"tags" must be a list of strings'
    if not isinstance(entry.get("metadata", {}), dict):
        return '"metadata" must be a JSON object'
    return label_problem(entry.get("collection", collection), [*tags, *entry_tags])


def _candidates(
    entry: dict[str, Any],
    base: Path,
    allowed_roots: list[Path] | None,
    collection: str,
    tags: list[str],
    number: int,
) -> Iterator[Candidate | Rejected]:
    path = Path(entry["path"]).expanduser()
    labels = sorted({*tags, *entry.get("tags", [])})
    found = discover(
        [path if path.is_absolute() else base / path],
        allowed_roots,
        entry.get("collection", collection),
        labels,
        entry.get("metadata"),
    )
    for item in found:
        if isinstance(item, Rejected):
            item.reason = f"manifest line {number}: {item.reason}"
        yield item
