"""``sensorium ingest --distributed``: one ingest job whose chunks run on the Celery workers of the ``ingest`` queue.

The command submits the job and follows it (a bar on a terminal, a plain line every few seconds otherwise) until
it ends; Ctrl-C stops following, not the job. Without a broker the chunks run in this process (embedded mode).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from api.cli_output import EXIT_FAILED, EXIT_STILL_RUNNING, fail

if TYPE_CHECKING:
    from core.db.models import Job
    from core.settings import Settings

_POLL_S = 0.5
_PLAIN_EVERY_S = 5.0
_FAILURES_SHOWN = 20


def _resolved(paths: list[Path], manifest: Path | None, roots: list[Path]) -> tuple[list[str], str | None]:
    """Return the absolute paths to send, refusing here what the workers would refuse (outside roots, missing)."""
    from index.ingest.discover import PathNotAllowed, check_allowed

    named = [*paths, *([manifest] if manifest is not None else [])]
    resolved: list[str] = []
    for path in named:
        try:
            real = check_allowed(path, roots)
        except PathNotAllowed as exc:
            fail(str(exc))
        if not real.exists():
            fail(f"{path}: no such file or folder")
        resolved.append(str(real))
    if manifest is not None and not Path(resolved[-1]).is_file():
        fail(f"{manifest}: the manifest must be a file")
    return (resolved[:-1], resolved[-1]) if manifest is not None else (resolved, None)


def run_distributed(
    paths: list[Path],
    manifest: Path | None,
    collection: str,
    tags: list[str],
    chunk_size: int | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Submit a distributed ingest job and, with ``follow``, show its progress until it ends."""
    from core.jobs import JobDispatchError, JobRequestError, QueueFull, submit
    from core.settings import get_settings

    settings = get_settings()
    if settings.broker_url:  # workers elsewhere read only their allowed roots: refuse here what they would refuse
        roots = settings.ingest.allowed_roots if settings.ingest.allowed_roots is not None else [Path.cwd()]
    else:  # the chunks run in this process, with this user's own permissions
        roots = [Path(Path.cwd().anchor)]
    sent_paths, sent_manifest = _resolved(paths, manifest, roots)
    params: dict[str, Any] = {"paths": sent_paths, "collection": collection, "tags": tags, "distributed": True}
    if sent_manifest is not None:
        params["manifest"] = sent_manifest
    if chunk_size is not None:
        params["chunk_size"] = chunk_size
    if not settings.broker_url:
        typer.secho("no SENSORIUM_BROKER_URL: the chunks run in this process", fg=typer.colors.YELLOW, err=True)
        # The jobs run here, so they read what this command may: anything its user can read.
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"allowed_roots": roots})})
    try:
        job = submit("ingest", params, queue="ingest", settings=settings)
    except (JobRequestError, QueueFull, JobDispatchError) as exc:
        fail(str(exc))
    if not follow and settings.broker_url:
        typer.echo(json.dumps({"job_id": job.id}) if as_json else f"job {job.id} queued")
        return
    if not as_json:
        typer.echo(f"job {job.id}: distributed ingest submitted; chunks run on the `ingest` workers", err=True)
    try:
        finished = _follow(job.id, settings, show=not as_json)
    except KeyboardInterrupt:
        fail(f"stopped following; job {job.id} goes on: `sensorium jobs show {job.id}`", EXIT_STILL_RUNNING)
    _report(finished, as_json)


def _follow(job_id: str, settings: Settings, show: bool) -> Job:
    from core.jobs import TERMINAL, get_job

    bar: Any = None
    if show and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]ingest"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
        bar.start()
        task = bar.add_task("ingest", total=1.0)
    last_plain = started = time.monotonic()
    try:
        while True:
            job = get_job(job_id, settings)
            if job is None:
                fail(f"job {job_id} vanished")
            if bar is not None:
                bar.update(task, completed=job.progress)
            elif show and time.monotonic() - last_plain >= _PLAIN_EVERY_S:
                last_plain = time.monotonic()
                chunks = job.result.get("chunks", "?") if job.result else "?"
                typer.echo(f"ingest {job.progress:.0%} of {chunks} chunks, {last_plain - started:.0f} s", err=True)
            if job.status in TERMINAL:
                return job
            time.sleep(_POLL_S)
    finally:
        if bar is not None:
            bar.stop()


def _report(job: Job, as_json: bool) -> None:
    from core.jobs import job_to_dict

    result = job.result or {}
    if as_json:
        data = job_to_dict(job)
        data["result"] = {k: v for k, v in result.items() if k != "asset_ids"}  # ids: `sensorium jobs show`
        typer.echo(json.dumps(data))
    else:
        for failure in (result.get("failures") or [])[:_FAILURES_SHOWN]:
            typer.secho(f"failed: {failure['path']}: {failure['reason']}", fg=typer.colors.RED, err=True)
        statuses = result.get("chunk_status") or {}
        typer.echo(
            f"job {job.id} {job.status}: indexed {result.get('indexed', 0)}, skipped {result.get('skipped', 0)}, "
            f"failed {result.get('failed', 0)}; chunks {statuses.get('succeeded', 0)}/{result.get('chunks', 0)} done"
        )
        if job.error:
            typer.secho(f"error: {job.error}", fg=typer.colors.RED, err=True)
    if job.status != "succeeded" or result.get("failed"):
        raise typer.Exit(EXIT_FAILED)  # as plain ingest: any file that failed makes the exit code say so
