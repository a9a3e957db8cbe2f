"""CLI commands for generation and jobs: ``sensorium generate``, ``sensorium jobs``, ``sensorium worker``.

Registered on the main app by api/cli.py; heavy imports (torch, diffusers, celery) happen inside command bodies.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from api.cli_help import HELP_OPTIONS, example
from api.cli_output import EXIT_FAILED, EXIT_STILL_RUNNING, announce_weights, fail, note

if TYPE_CHECKING:
    from api.client import Client
    from core.db.models import Job
    from core.settings import Settings

_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*$")


def _parse_size(size: str) -> tuple[int, int]:
    match = _SIZE.match(size)
    if match is None:
        fail(f"--size must be WIDTHxHEIGHT, e.g. 512x512 (got {size!r})")
    return int(match.group(1)), int(match.group(2))


def _init_image_id(value: str, settings: Settings) -> str:
    """Return an asset id: ``value`` itself, or the id of the image file it names once stored."""
    from generators.service import store_init_image

    path = Path(value).expanduser()
    if not path.is_file():
        return value  # an asset id; prepare() checks that it exists and is an image
    return store_init_image(path.read_bytes(), path.name, settings)


def _quiet_pipeline_loading() -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # The pipeline loads in this process: its loading bars would garble the output on a terminal.
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()


def _assets(job: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    from core.blobs import BlobStore
    from index.services.assets import existing_assets

    seeds = {o.get("asset_id"): o.get("seed") for o in (job["result"] or {}).get("outputs", [])}
    blobs = BlobStore(settings.resolved_data_dir())
    found = []
    for asset in existing_assets(settings, (job["result"] or {}).get("asset_ids", [])):
        path = str(blobs.path(asset.blob_key)) if asset.blob_key else asset.uri
        found.append(
            {
                "asset_id": asset.id,
                "name": asset.name,
                "uri": asset.uri or asset.blob_key,
                "path": path,
                "width": asset.width,
                "height": asset.height,
                "seed": seeds.get(asset.id),
            }
        )
    return found


def print_job(data: dict[str, Any], assets: list[dict[str, Any]] | None, as_json: bool) -> None:
    """Print a job (the public JSON shape) and, when given, the assets it made."""
    from datetime import datetime

    if as_json:
        typer.echo(json.dumps(data if assets is None else {**data, "assets": assets}))
        return
    took = ""
    if data.get("started_at") and data.get("finished_at"):
        seconds = datetime.fromisoformat(data["finished_at"]) - datetime.fromisoformat(data["started_at"])
        took = f" in {seconds.total_seconds():.1f} s"
    typer.echo(
        f"job {data['id']} ({data['kind']}) {data['status']}{took}, progress {data['progress']:.0%}, "
        f"attempts {data['attempts']}"
    )
    if data.get("error"):
        typer.echo(f"  error: {data['error']}")
    for asset in assets or []:
        typer.echo(f"  asset {asset['asset_id']}  seed {asset['seed']}  {asset['path']}")


def _print_job(job: Job, settings: Settings, as_json: bool, with_assets: bool = True) -> None:
    from core.jobs import job_to_dict

    data = job_to_dict(job)
    print_job(data, _assets(data, settings) if with_assets else None, as_json)


def _exit_for(job: Job) -> None:
    if job.status in ("failed", "canceled"):
        raise typer.Exit(EXIT_FAILED)
    if job.status in ("queued", "running"):
        note(f"job {job.id} is still {job.status}; follow it with `sensorium jobs show {job.id}`")
        raise typer.Exit(EXIT_STILL_RUNNING)


def _list_generators(as_json: bool) -> None:
    from api.client import current_client

    client = current_client()
    if client is not None:
        from api.cli_remote import call

        rows = call(client, "GET", "/v1/generators")["generators"]
    else:
        from core.settings import get_settings
        from generators.service import describe_generators

        rows = describe_generators(get_settings())
    if as_json:
        typer.echo(json.dumps({"generators": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    from generators.registry import describe_limits

    table = Table(show_lines=False)
    for column in ("name", "task", "model", "defaults", "limits", "notes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        notes = [
            flag
            for flag, on in (
                ("default", row["default_for_task"]),
                ("random weights: output is noise", row["random_weights"]),
                ("no weights here", not row["weights_available"]),
            )
            if on
        ]
        defaults, limits = describe_limits(row["task"], row["defaults"], row["limits"])
        table.add_row(row["name"], row["task"], row["model"], defaults, limits, "; ".join(notes))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def generate(
    prompt: Annotated[str | None, typer.Argument(help="What to generate.")] = None,
    generator: Annotated[str | None, typer.Option("--generator", "-g", help="Generator name (see --list).")] = None,
    negative: Annotated[str | None, typer.Option("--negative", help="Negative prompt.")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first output (output i uses seed + i).")] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, multiples of 8.")] = None,
    n: Annotated[int | None, typer.Option("--n", "-n", help="Number of images.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Scheduler name (default keeps the model's).")] = None,
    init_image: Annotated[
        str | None, typer.Option("--init-image", help="Image-to-image: an image file or an asset id.")
    ] = None,
    strength: Annotated[float | None, typer.Option(help="Image-to-image: how far from the init image (0-1].")] = None,
    task: Annotated[
        str | None, typer.Option(help="text-to-image, image-to-image, text-to-audio, text-to-video, image-to-video.")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Audio or video: length in seconds.")] = None,
    frames: Annotated[int | None, typer.Option(help="Video: number of frames.")] = None,
    fps: Annotated[int | None, typer.Option(help="Video: frames per second.")] = None,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", help="Audio: output sample rate (Hz).")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="Output file format (png, wav, flac, mp3, mp4).")
    ] = None,
    callback_url: Annotated[str | None, typer.Option("--callback-url", help="POSTed the job when it ends.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end and print it.")] = False,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds --wait waits at most.")] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    list_generators: Annotated[bool, typer.Option("--list", help="List the generators and exit.")] = False,
) -> None:
    """Generate images, audio or video from a prompt as a job; outputs are stored and indexed as assets."""
    from core.settings import get_settings
    from generators.params import InvalidGenerationParams
    from generators.registry import GeneratorUnavailable

    if list_generators:
        try:
            _list_generators(as_json)
        except GeneratorUnavailable as exc:
            fail(str(exc))
        return
    if prompt is None:
        fail('give a prompt, e.g. sensorium generate "a red cube" --generator tiny-random --wait, or use --list')
    request: dict[str, Any] = {"prompt": prompt}
    options = {"generator": generator, "negative_prompt": negative, "steps": steps, "seed": seed, "n": n,
               "guidance_scale": guidance, "scheduler": scheduler, "strength": strength, "task": task,
               "duration_s": duration, "num_frames": frames, "fps": fps, "sample_rate": sample_rate,
               "output_format": output_format}  # fmt: skip
    request.update({key: value for key, value in options.items() if value is not None})
    if size is not None:
        request["width"], request["height"] = _parse_size(size)
    from api.client import current_client

    client = current_client()
    if client is not None:
        _generate_remote(client, request, init_image, callback_url, wait, timeout, as_json)
        return
    settings = get_settings()
    embedded = not settings.broker_url
    try:
        job = _submit(request, init_image, callback_url, settings)
    except InvalidGenerationParams as exc:
        fail("invalid request: " + "; ".join(f"{field}: {reason}" for field, reason in exc.errors))
    if not wait and not embedded:
        _print_job(job, settings, as_json, with_assets=False)
        return
    if embedded and not wait:
        note("embedded mode (no SENSORIUM_BROKER_URL): the job runs in this process; waiting for it")
    _finish(job.id, settings, timeout, as_json)


def _generate_remote(
    client: Client,
    request: dict[str, Any],
    init_image: str | None,
    callback_url: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Submit the generation to the server; with ``wait``, follow it to its end."""
    from api.cli_remote import call, exit_for, follow_job, refused
    from api.client import ServerError

    if init_image is not None:
        path = Path(init_image).expanduser()
        if path.is_file():  # a local image: upload it, then refer to the stored asset
            try:
                items = client.multipart("/v1/assets", [], [("files", path)])["items"]
            except ServerError as exc:
                refused(exc)
            init_image = items[0]["asset"]["id"]
        request["init_image"] = init_image
    body = {**request, **({"callback_url": callback_url} if callback_url else {})}
    job = call(client, "POST", "/v1/generate", body=body)
    if wait:
        job = follow_job(client, job, timeout)
    print_job({k: v for k, v in job.items() if k != "url"}, None, as_json)
    if wait:
        exit_for(job)


def _submit(request: dict[str, Any], init_image: str | None, callback_url: str | None, settings: Settings) -> Job:
    from core.jobs import JobDispatchError, JobRequestError, QueueFull
    from generators.registry import GeneratorUnavailable
    from generators.service import prepare, submit_generation
    from index.encoders import EncoderWeightsUnavailable, get_encoder
    from index.library import ModelMismatchError

    try:
        if init_image is not None:
            request["init_image"] = _init_image_id(init_image, settings)
        if not settings.broker_url:
            prepare(request, settings)  # refuse a bad request before the encoder loads
            get_encoder(settings.encoder)  # refuse missing encoder weights before the job is queued
            _quiet_pipeline_loading()
        job = submit_generation(request, callback_url=callback_url, settings=settings)
        if not settings.broker_url:
            announce_weights(settings)  # this process indexes the outputs
        return job
    except (GeneratorUnavailable, JobRequestError, EncoderWeightsUnavailable, ModelMismatchError) as exc:
        fail(str(exc))
    except QueueFull as exc:
        fail(f"{exc}; try again in {exc.retry_after_s} s", EXIT_FAILED)
    except JobDispatchError as exc:
        fail(str(exc), EXIT_FAILED)


def _finish(job_id: str, settings: Settings, timeout: float, as_json: bool) -> None:
    from core.jobs import wait as wait_for
    from core.outbox import wait_for_deliveries

    job = wait_for(job_id, timeout, settings)
    # Give the job's callback (if any) a chance to arrive before this process exits.
    wait_for_deliveries(35.0)
    _print_job(job, settings, as_json)
    _exit_for(job)


jobs_app = typer.Typer(
    help="List, show and cancel jobs (`sensorium jobs` alone lists them).",
    invoke_without_command=True,
    context_settings=HELP_OPTIONS,
    epilog=example("sensorium jobs show JOB_ID"),
)
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobKind = Literal["generate", "ingest", "ingest_chunk"]
_AS_JSON = typer.Option("--json", help="Print JSON.")


@jobs_app.callback()
def _jobs_default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        jobs_list()


@jobs_app.command("list", epilog=example("sensorium jobs list --status failed --limit 5"))
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    kind: Annotated[JobKind | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 20,
    as_json: Annotated[bool, _AS_JSON] = False,
) -> None:
    """List jobs, newest first."""
    from api.client import current_client

    client = current_client()
    if client is not None:
        from api.cli_remote import call

        query = {"status": status, "kind": kind, "limit": limit}
        found = call(client, "GET", "/v1/jobs", query=query)["items"]
    else:
        found = _local_jobs(status, kind, limit)
    if as_json:
        typer.echo(json.dumps({"jobs": [{k: v for k, v in job.items() if k != "url"} for job in found]}))
        return
    if not found:
        typer.echo("no jobs")
    for job in found:
        created = (job.get("created_at") or "?")[:19].replace("T", " ")
        typer.echo(
            f"{job['id']}  {job['kind']:<8} {job['status']:<9} {job['progress']:>4.0%}  {created}  {job['error'] or ''}"
        )


def _local_jobs(status: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
    from core.jobs import JobRequestError, job_to_dict, list_jobs
    from core.settings import get_settings

    try:
        return [job_to_dict(job) for job in list_jobs(status=status, kind=kind, limit=limit, settings=get_settings())]
    except JobRequestError as exc:
        fail(str(exc))


@jobs_app.command("show", epilog=example("sensorium jobs show 3f2c9d1e-... --json"))
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job id (from `jobs list`).")],
    as_json: Annotated[bool, _AS_JSON] = False,
) -> None:
    """Show one job and the assets it made."""
    from api.client import current_client
    from core.settings import get_settings

    client = current_client()
    if client is not None:
        from api.cli_remote import call

        print_job({k: v for k, v in call(client, "GET", f"/v1/jobs/{job_id}").items() if k != "url"}, None, as_json)
        return
    from core.jobs import get_job

    settings = get_settings()
    shown = get_job(job_id, settings)
    if shown is None:
        fail(f"no job {job_id!r}", EXIT_FAILED)
    _print_job(shown, settings, as_json)


@jobs_app.command("cancel", epilog=example("sensorium jobs cancel 3f2c9d1e-..."))
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job id (from `jobs list`).")],
    as_json: Annotated[bool, _AS_JSON] = False,
) -> None:
    """Cancel a queued or running job (a running one stops at its next step)."""
    from api.client import current_client
    from core.settings import get_settings

    client = current_client()
    if client is not None:
        from api.cli_remote import call

        answer = call(client, "POST", f"/v1/jobs/{job_id}/cancel")
        print_job({k: v for k, v in answer.items() if k != "url"}, None, as_json)
        return
    from core.jobs import JobNotFound, cancel

    settings = get_settings()
    try:
        canceled = cancel(job_id, settings)
    except JobNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    _print_job(canceled, settings, as_json, with_assets=False)


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume: gpu, ingest.")] = "gpu,ingest",
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs run at once (threads).")] = 1,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port (all interfaces)."
        ),
    ] = None,
) -> None:
    """Run a job worker (needs SENSORIUM_BROKER_URL); it also requeues jobs whose worker died."""
    from logging.config import dictConfig

    from core.logs import logging_config
    from core.settings import get_settings

    settings = get_settings()
    if not settings.broker_url:
        fail(
            "a worker needs a broker: set SENSORIUM_BROKER_URL (e.g. redis://127.0.0.1:6379/0); without one, "
            "jobs run inside the process that submits them"
        )
    # Celery keeps a root logger that has handlers (worker_hijack_root_logger is off), so its lines follow too.
    dictConfig(logging_config(settings.log_format, logging.getLogger().level))
    if metrics_port is not None:
        from core.metrics import serve_metrics

        try:
            serve_metrics(metrics_port)
        except OSError as exc:
            fail(f"cannot serve metrics on port {metrics_port}: {exc}")
    from core.jobs import run_worker

    _quiet_pipeline_loading()
    names = [name.strip() for name in queues.split(",") if name.strip()]
    try:
        run_worker(names, concurrency, settings)
    except ValueError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add generate, jobs and worker to the ``sensorium`` app."""
    app.command(epilog=example('sensorium generate "a lighthouse at dusk" --generator sd15 --wait'))(generate)
    app.add_typer(jobs_app, name="jobs")
    app.command(epilog=example("sensorium worker --queues gpu --concurrency 1"))(worker)
