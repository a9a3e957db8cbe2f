"""The one error media decoding raises for files it cannot use."""

from __future__ import annotations


class MediaError(ValueError):
    """A file that cannot be decoded as the requested media; the message is the human-readable reason."""
