"""Ingest files and folders in place, then leave a fresh index snapshot for the next process to start from."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.settings import Settings
from index.ingest.discover import Candidate, Rejected
from index.ingest.pipeline import IngestSummary, ProgressCallback, ingest
from index.service import get_live_index


def ingest_and_snapshot(
    items: Iterable[Candidate | Rejected],
    settings: Settings,
    on_progress: ProgressCallback | None = None,
    on_rebuild: Callable[[int], None] | None = None,
    keep_outcomes: bool = False,
    near_duplicates: str | None = None,
) -> IngestSummary:
    """Ingest ``items`` (``near_duplicates``: the near-copy policy, default from settings); then wait for a pending index rebuild (``on_rebuild(vectors)`` says so) and save it."""
    summary = ingest(
        items, settings, on_progress=on_progress, keep_outcomes=keep_outcomes, near_duplicates=near_duplicates
    )
    index = get_live_index(settings)
    if index.rebuilding:
        if on_rebuild is not None:
            on_rebuild(len(index))
        index.wait_for_rebuild()
    index.save()
    return summary
