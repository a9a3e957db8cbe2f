"""Index jobs: server-side ingest of paths, a JSONL manifest, or staged uploads (run by core.jobs).

A distributed ingest (``distributed: true``) walks the library once, then fans its files out in chunks of
``ingest.chunk_size`` to ``ingest_chunk`` jobs on the ``ingest`` queue (core/jobs/fanout.py): each chunk runs whole
on one worker, is retried like any job, and the parent's result merges theirs (merge_ingest_results, registered
here as the ``ingest`` kind's merge hook). Workers write only the database;
every process's index catches up from the change log, so no index file has two writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.jobs import ChildOutcome, register_merge, sum_into
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


def _allowed_roots(settings: Settings) -> list[Path]:
    from core.jobs import JobFailed

    roots = settings.ingest.allowed_roots
    if roots is None:
        raise JobFailed("server-side ingest needs SENSORIUM_INGEST__ALLOWED_ROOTS")
    return roots


def _requested(params: dict[str, Any], roots: list[Path], data_dir: Path) -> Iterator[Candidate | Rejected]:
    """Yield the files a job's ``paths`` and ``manifest`` name, or why each was refused."""
    collection = str(params.get("collection") or "default")
    tags = [str(t) for t in params.get("tags") or []]
    if params.get("manifest"):
        manifest = Path(params["manifest"])
        try:
            yield from read_manifest(manifest, roots, collection, tags)
        except (PathNotAllowed, FileNotFoundError) as exc:  # moved or removed since the API checked it
            yield Rejected(str(manifest), str(exc))
    yield from discover([Path(p) for p in params.get("paths") or []], roots, collection, tags, exclude=data_dir)


def _chunk_items(params: dict[str, Any], roots: list[Path]) -> Iterator[Candidate | Rejected]:
    """Yield a chunk's files, each checked again against this worker's allowed roots."""
    for item in params.get("items") or []:
        found = list(discover([Path(item["path"])], roots, item["collection"], item["tags"], item["metadata"]))
        for entry in found:
            if isinstance(entry, Candidate):
                entry.name = str(item.get("name") or entry.name)
            yield entry


def _as_item(candidate: Candidate) -> dict[str, Any]:
    return {
        "path": str(candidate.path),
        "name": candidate.name,
        "collection": candidate.collection,
        "tags": candidate.tags,
        "metadata": candidate.metadata,
    }


_FAILED_PATHS_CAP = 1_000  # file paths listed over all failed chunks of one ingest; the counts stay exact


def merge_ingest_results(own: dict[str, Any], children: Iterator[ChildOutcome]) -> dict[str, Any]:
    """Merge a distributed ingest's chunk results into its own: counts summed, asset ids and failures
    concatenated, and each chunk that did not succeed listed with its files, so the admin knows what to resubmit."""
    merged = dict(own)
    failed_chunks: list[dict[str, Any]] = []
    listed = 0
    for child in children:
        sum_into(merged, child.result)
        if child.status != "succeeded":
            paths = [str(item.get("path")) for item in child.params.get("items") or [] if isinstance(item, dict)]
            kept = paths[: max(0, _FAILED_PATHS_CAP - listed)]
            listed += len(kept)
            failed_chunks.append({"job_id": child.job_id, "files": len(paths), "paths": kept})
    merged["failed_chunks"] = failed_chunks
    return merged


register_merge("ingest", merge_ingest_results)


def _fan_out_paths(ctx: JobContext, settings: Settings) -> dict[str, Any]:
    """Walk the request once and hand its files to chunk jobs; files refused while walking are reported here."""
    from core.jobs import fan_out

    own: dict[str, Any] = {"indexed": 0, "skipped": 0, "failed": 0, "asset_ids": [], "failures": []}
    chunk_size = int(ctx.params.get("chunk_size") or settings.ingest.chunk_size)

    def chunks() -> Iterator[dict[str, Any]]:
        chunk: list[dict[str, Any]] = []
        for entry in _requested(ctx.params, _allowed_roots(settings), settings.resolved_data_dir()):
            if isinstance(entry, Rejected):
                own["failed"] += 1
                if len(own["failures"]) < 1000:
                    own["failures"].append({"path": entry.path, "reason": entry.reason})
                continue
            chunk.append(_as_item(entry))
            if len(chunk) == chunk_size:
                yield {"items": chunk}
                chunk = []
        if chunk:
            yield {"items": chunk}

    # Raises AwaitChildren (with ``own`` as the parent's part of the result) unless there was nothing to ingest.
    fan_out(ctx, "ingest_chunk", chunks(), queue="ingest", result=own)
    return own


def _ingest_paths(ctx: JobContext, settings: Settings) -> dict[str, Any]:
    roots = _allowed_roots(settings)
    return _ingest_items(ctx, settings, lambda: _requested(ctx.params, roots, settings.resolved_data_dir()))


def _ingest_items(
    ctx: JobContext, settings: Settings, items: Callable[[], Iterator[Candidate | Rejected]]
) -> dict[str, Any]:
    from core.jobs import JobCanceled
    from index.ingest.pipeline import ingest

    total = max(1, sum(1 for _ in items()))  # a cheap walk, so progress is a fraction
    outcomes: list[Outcome] = []

    def on_progress(outcome: Outcome) -> None:
        outcomes.append(outcome)
        ctx.progress(len(outcomes) / total)
        if ctx.should_cancel():
            raise JobCanceled(result=_summary(outcomes))

    ingest(items(), settings, on_progress=on_progress)
    return _summary(outcomes)


def run_ingest_chunk_job(ctx: JobContext) -> dict[str, Any]:
    """Ingest one chunk of a distributed ingest (decode and encode here); any failure of the chunk is retried."""
    from core.jobs import JobCanceled, JobFailed, RetryableJobError

    roots = _allowed_roots(ctx.settings)
    try:
        return _ingest_items(ctx, ctx.settings, lambda: _chunk_items(ctx.params, roots))
    except (JobCanceled, JobFailed, RetryableJobError):
        raise
    except Exception as exc:  # a chunk must not be dropped: retry it (files already stored are skipped)
        raise RetryableJobError(f"{type(exc).__name__}: {exc}") from exc


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
    if ctx.params.get("uploads"):
        result = _store_uploads(ctx, ctx.settings)
    elif ctx.params.get("distributed"):
        return _fan_out_paths(ctx, ctx.settings)
    else:
        result = _ingest_paths(ctx, ctx.settings)
    if not ctx.settings.broker_url:
        from index.service import get_live_index

        # Embedded mode: this process is the index's only writer, and the next one starts from a fresh snapshot.
        # With workers, the snapshot has one writer elsewhere (`sensorium reindex`, deploy/k8s/snapshot-cronjob.yaml).
        get_live_index(ctx.settings).save()
    return result
