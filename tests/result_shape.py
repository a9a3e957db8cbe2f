"""DESIGN.md's search result shape, shared by the tests that check it (CLI --json, agent, MCP)."""

from __future__ import annotations

RESULT_KEYS = frozenset(
    {
        "asset_id",
        "name",
        "uri",
        "kind",
        "collections",
        "tags",
        "score",
        "fused_score",
        "segment",
        "thumbnail_url",
        "content_url",
    }
)
