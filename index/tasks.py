"""Index jobs: server-side ingest of paths, a JSONL manifest, or staged uploads (run by core.jobs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.ingest.discover import Candidate, PathNotAllowed, Rejected, discover
from index.ingest.manifest import read_manifest

if TYPE_CHECKING:
    from core.jobs import JobContext
    from core.settings import Settings
    from index.ingest.prepared import Outcome


def _summary(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "indexed": sum(o.status == "indexed" for o in outcomes),
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "asset_ids": [o.asset_id for o in outcomes if o.asset_id and o.status != "failed"],
        "failures": [{"path": o.path, "reason": o.reason} for o in outcomes if o.status == "failed"][:1000],
    }


def _ingest_paths(ctx: JobContext, settings: Settings) -> dict[str, Any]:
    from core.jobs import JobCanceled, JobFailed
    from index.ingest.pipeline import ingest

    roots = settings.ingest.allowed_roots
    if roots is None:
        raise JobFailed("server-side ingest needs SENSORIUM_INGEST__ALLOWED_ROOTS")
    params = ctx.params
    collection = str(params.get("collection") or "default")
    tags = [str(t) for t in params.get("tags") or []]

    def items() -> Iterator[Candidate | Rejected]:
        if params.get("manifest"):
            manifest = Path(params["manifest"])
            try:
                yield from read_manifest(manifest, roots, collection, tags)
            except (PathNotAllowed, FileNotFoundError) as exc:  # moved or removed since the API checked it
                yield Rejected(str(manifest), str(exc))
        yield from discover([Path(p) for p in params.get("paths") or []], roots, collection, tags)

    total = max(1, sum(1 for _ in items()))  # a cheap walk, so progress is a fraction
    outcomes: list[Outcome] = []

    def on_progress(outcome: Outcome) -> None:
        outcomes.append(outcome)
        ctx.progress(len(outcomes) / total)
        if ctx.should_cancel():
            raise JobCanceled(result=_summary(outcomes))

    ingest(items(), settings, on_progress=on_progress)
    return _summary(outcomes)


def _store_uploads(ctx: JobContext, settings: Settings) -> dict[str, Any]:
    """Index files the API staged in the data dir, deleting each staged copy once it is stored or refused."""
    from core.jobs import JobCanceled
    from index.ingest.prepared import Outcome
    from index.ingest.store import store_file

    staging = (settings.resolved_data_dir() / "uploads").resolve()
    uploads = list(ctx.params.get("uploads") or [])
    outcomes: list[Outcome] = []
    for number, upload in enumerate(uploads):
        if ctx.should_cancel():
            raise JobCanceled(result=_summary(outcomes))
        path = Path(str(upload["path"])).resolve()
        name = str(upload["name"])
        if not path.is_relative_to(staging):  # params come from the API, but never touch files outside staging
            outcomes.append(Outcome(name, "failed", reason="staged upload outside the uploads folder"))
            continue
        if not path.exists():  # an earlier attempt stored it and removed the staged copy
            outcomes.append(Outcome(name, "skipped", upload.get("asset_id"), "already stored"))
            continue
        outcome = store_file(
            path,
            name=name,
            source="uploaded",
            collection=str(upload.get("collection") or "default"),
            tags=[str(t) for t in upload.get("tags") or []],
            settings=settings,
        )
        outcomes.append(outcome)
        path.unlink(missing_ok=True)
        _remove_empty(path.parent, staging)
        ctx.progress((number + 1) / max(1, len(uploads)))
    return _summary(outcomes)


def _remove_empty(folder: Path, staging: Path) -> None:
    if folder != staging and folder.is_relative_to(staging):
        with contextlib.suppress(OSError):  # other staged files of the same upload are still waiting
            folder.rmdir()


def run_ingest_job(ctx: JobContext) -> dict[str, Any]:
    """Run an ingest job (``paths``/``manifest`` under the allowed roots, or staged ``uploads``); return counts."""
    result = _store_uploads(ctx, ctx.settings) if ctx.params.get("uploads") else _ingest_paths(ctx, ctx.settings)
    from index.service import get_live_index

    get_live_index(ctx.settings).save()  # the next process starts from a fresh snapshot
    return result
