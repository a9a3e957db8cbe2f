"""CLI commands for generation and jobs: ``sensorium generate``, ``sensorium jobs``, ``sensorium worker``.

Registered on the main app by api/cli.py; heavy imports (torch, diffusers, celery) happen inside command bodies.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli_output import EXIT_FAILED, EXIT_STILL_RUNNING, fail, note

if TYPE_CHECKING:
    from core.db.models import Job
    from core.settings import Settings
    from generators.registry import GeneratorSpec

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


def _offline_fallback(settings: Settings, spec: GeneratorSpec) -> Settings:
    """Return settings whose encoder works here: random weights for a random generator when real ones are missing.

    Only for random-weight generators (their output is noise anyway) and only while the library holds no vectors
    from another model; like ``sensorium demo`` it says so loudly.
    """
    from core.db.engine import read_session
    from index.encoders import EncoderWeightsUnavailable, get_encoder
    from index.encoders.openclip import model_id_for
    from index.library import stored_model_id

    try:
        get_encoder(settings.encoder)
        return settings
    except EncoderWeightsUnavailable:
        if not spec.is_random:
            raise
        fallback = settings.encoder.model_copy(update={"pretrained": "none"})
        with read_session(settings) as session:
            stored = stored_model_id(session)
        if stored is not None and stored != model_id_for(fallback):
            raise
        note(
            f"OFFLINE: weights for encoder {settings.encoder.model} ({settings.encoder.pretrained}) are not available "
            f"here. {spec.name!r} output is indexed with seeded random encoder weights, so search scores are "
            "meaningless; set SENSORIUM_ENCODER__PRETRAINED to real weights (README)."
        )
        return settings.model_copy(update={"encoder": fallback})


def _quiet_pipeline_loading() -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # The pipeline loads in this process: its loading bars would garble the output on a terminal.
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()


def _assets(job: Job, settings: Settings) -> list[dict[str, Any]]:
    from core.blobs import BlobStore
    from core.db.engine import read_session
    from core.db.models import Asset

    seeds = {o.get("asset_id"): o.get("seed") for o in (job.result or {}).get("outputs", [])}
    blobs = BlobStore(settings.resolved_data_dir())
    found = []
    with read_session(settings) as session:
        for asset_id in (job.result or {}).get("asset_ids", []):
            asset = session.get(Asset, asset_id)
            if asset is None:
                continue
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


def _print_job(job: Job, settings: Settings, as_json: bool, with_assets: bool = True) -> None:
    from core.jobs import job_to_dict

    data = job_to_dict(job)
    assets = _assets(job, settings) if with_assets else []
    if as_json:
        typer.echo(json.dumps({**data, "assets": assets} if with_assets else data))
        return
    took = ""
    if job.started_at and job.finished_at:
        took = f" in {(job.finished_at - job.started_at).total_seconds():.1f} s"
    typer.echo(
        f"job {job.id} ({job.kind}) {job.status}{took}, progress {data['progress']:.0%}, attempts {job.attempts}"
    )
    if job.error:
        typer.echo(f"  error: {job.error}")
    for asset in assets:
        typer.echo(f"  asset {asset['asset_id']}  seed {asset['seed']}  {asset['path']}")


def _exit_for(job: Job) -> None:
    if job.status in ("failed", "canceled"):
        raise typer.Exit(EXIT_FAILED)
    if job.status in ("queued", "running"):
        note(f"job {job.id} is still {job.status}; follow it with `sensorium jobs show {job.id}`")
        raise typer.Exit(EXIT_STILL_RUNNING)


def _list_generators(as_json: bool) -> None:
    from core.settings import get_settings
    from generators.service import describe_generators

    rows = describe_generators(get_settings())
    if as_json:
        typer.echo(json.dumps({"generators": rows}))
        return
    for row in rows:
        d, lim = row["defaults"], row["limits"]
        flags = [
            flag
            for flag, on in (("default", row["default_for_task"]), ("no weights", not row["weights_available"]))
            if on
        ]
        typer.echo(
            f"{row['name']:<22} {row['task']:<15} {row['model']:<45} {d['width']}x{d['height']}, {d['steps']} steps; "
            f"max n {lim['max_n']}, {lim['max_steps']} steps, {lim['max_pixels']:,} px"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )


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
    settings = get_settings()
    request: dict[str, Any] = {"prompt": prompt}
    options = {"generator": generator, "negative_prompt": negative, "steps": steps, "seed": seed, "n": n,
               "guidance_scale": guidance, "scheduler": scheduler, "strength": strength, "task": task,
               "duration_s": duration, "num_frames": frames, "fps": fps, "sample_rate": sample_rate,
               "output_format": output_format}  # fmt: skip
    request.update({key: value for key, value in options.items() if value is not None})
    if size is not None:
        request["width"], request["height"] = _parse_size(size)
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


def _submit(request: dict[str, Any], init_image: str | None, callback_url: str | None, settings: Settings) -> Job:
    from core.jobs import JobDispatchError, JobRequestError, QueueFull
    from generators.registry import GeneratorUnavailable
    from generators.service import prepare, submit_generation
    from index.encoders import EncoderWeightsUnavailable
    from index.library import ModelMismatchError

    try:
        if init_image is not None:
            request["init_image"] = _init_image_id(init_image, settings)
        if not settings.broker_url:
            spec, _ = prepare(request, settings)
            settings = _offline_fallback(settings, spec)
            _quiet_pipeline_loading()
        return submit_generation(request, callback_url=callback_url, settings=settings)
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


def jobs(
    action: Annotated[str, typer.Argument(help="list, show or cancel.")] = "list",
    job_id: Annotated[str | None, typer.Argument(help="Job id (show, cancel).")] = None,
    status: Annotated[str | None, typer.Option(help="list: only jobs in this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="list: only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="list: at most this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List jobs, show one, or cancel one."""
    from core.jobs import JobNotFound, JobRequestError, cancel, get_job, job_to_dict, list_jobs
    from core.settings import get_settings

    settings = get_settings()
    if action == "list":
        try:
            found = list_jobs(status=status, kind=kind, limit=limit, settings=settings)
        except JobRequestError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(json.dumps({"jobs": [job_to_dict(job) for job in found]}))
        for job in [] if as_json else found:
            created = job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "?"
            typer.echo(f"{job.id}  {job.kind:<8} {job.status:<9} {job.progress:>4.0%}  {created}  {job.error or ''}")
        return
    if action not in ("show", "cancel"):
        fail(f"unknown action {action!r}: use list, show ID or cancel ID")
    if not job_id:
        fail(f"`sensorium jobs {action}` needs a job id")
    if action == "show":
        shown = get_job(job_id, settings)
        if shown is None:
            fail(f"no job {job_id!r}", EXIT_FAILED)
        _print_job(shown, settings, as_json)
        return
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
    app.command()(generate)
    app.command()(jobs)
    app.command()(worker)
