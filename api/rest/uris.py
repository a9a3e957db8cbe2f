"""Where an asset's file lives, as each caller may see it: the full server path only for admin keys."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path, PurePath


@lru_cache(maxsize=8)
def _resolved(roots: tuple[Path, ...]) -> tuple[Path, ...]:
    # Longest first, so a file under nested roots is shown relative to the innermost one.
    return tuple(sorted((root.expanduser().resolve() for root in roots), key=lambda r: len(r.parts), reverse=True))


def visible_uri(uri: str | None, is_admin: bool, roots: list[Path] | None) -> str | None:
    """Return ``uri`` in full for admin keys; for others a file path becomes relative to its allowed root.

    Blob keys (relative already) are unchanged. A path under no configured root (ingested from the command line,
    or a root since removed) is shown as its file name only, never as a server path.
    """
    if uri is None or is_admin or not PurePath(uri).is_absolute():
        return uri
    path = PurePath(uri)
    for root in _resolved(tuple(roots or ())):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name
