"""What the CLI and REST call to generate: validate a request completely, then submit it as a ``generate`` job.

Every check that can fail on bad input happens here, before a job exists: parameters, generator, scheduler,
init image, callback URL. A request that passes becomes a job whose parameters (seeds included) are fixed, so a
retried job reproduces the same outputs.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from generators.params import InvalidGenerationParams, ResolvedParams, parse_request, resolve_generator, validate_for
from generators.registry import (
    GeneratorSpec,
    GeneratorUnavailable,
    UnknownGenerator,
    default_generator,
    list_generators,
    load_user_generators,
    random_alternative,
    weights_available,
)

if TYPE_CHECKING:
    from PIL import Image

    from core.db.models import Job
    from core.settings import Settings

JOB_KIND = "generate"
JOB_QUEUE = "gpu"

_loaded_files: dict[Path, float] = {}
_loaded_lock = threading.Lock()


def ensure_user_generators(settings: Settings) -> None:
    """Register the generators in ``generators.config_file`` (again when the file changed)."""
    path = settings.generators.config_file
    if path is None:
        return
    path = path.expanduser().resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise GeneratorUnavailable(f"generators file {path} cannot be read: {exc}") from None
    with _loaded_lock:
        if _loaded_files.get(path) != mtime:
            try:
                load_user_generators(path)
            except (ValueError, OSError) as exc:
                raise GeneratorUnavailable(f"generators file {path}: {exc}") from None
            _loaded_files[path] = mtime


def describe_generators(settings: Settings) -> list[dict[str, Any]]:
    """Return every registered generator as JSON: name, task, model, pipeline, defaults, limits, availability."""
    ensure_user_generators(settings)
    defaults: dict[str, str] = {}
    for task in sorted({spec.task for spec in list_generators()}):
        with contextlib.suppress(UnknownGenerator):
            defaults[task] = default_generator(task).name
    return [
        {
            "name": spec.name,
            "task": spec.task,
            "model": spec.model,
            "pipeline_class": spec.pipeline_class,
            "dtype": spec.dtype,
            "description": spec.description,
            "defaults": spec.defaults.model_dump(),
            "limits": spec.limits.model_dump(),
            "random_weights": spec.is_random,
            "weights_available": weights_available(spec),
            "default_for_task": defaults.get(spec.task) == spec.name,
        }
        for spec in list_generators()
    ]


def _invalid(field: str, reason: str) -> InvalidGenerationParams:
    return InvalidGenerationParams([(field, reason)])


def _decode(source: Path | BinaryIO, max_pixels: int) -> Image.Image:
    from PIL import Image, ImageOps, UnidentifiedImageError

    unreadable = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
    try:
        image = Image.open(source)
    except UnidentifiedImageError:
        raise _invalid("init_image", "not a recognised image format") from None
    except unreadable as exc:
        raise _invalid("init_image", f"unreadable image: {exc}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise _invalid("init_image", f"{width}x{height} exceeds the {max_pixels:,}-pixel limit")
        try:
            image.load()
            return (ImageOps.exif_transpose(image) or image).convert("RGB")
        except unreadable as exc:
            raise _invalid("init_image", f"corrupt image: {exc}") from None


def load_init_image(asset_id: str, settings: Settings) -> Image.Image:
    """Return the RGB image of an indexed image asset, or raise InvalidGenerationParams saying why not."""
    from index.content import ContentUnavailable, open_content
    from index.services.assets import AssetNotFound, get_asset

    try:
        asset = get_asset(settings, asset_id, include_trashed=False)
    except AssetNotFound:
        raise _invalid("init_image", f"no asset {asset_id!r}") from None
    if asset.kind != "image" or asset.status != "indexed":
        raise _invalid("init_image", f"asset {asset_id!r} is a {asset.status} {asset.kind}, not an indexed image")
    try:  # the same checked descriptor the content route streams: a swapped file is never read
        opened = open_content(settings, asset_id)
    except ContentUnavailable:
        raise _invalid("init_image", f"asset {asset_id!r} has no stored file") from None
    with opened.handle:
        return _decode(opened.handle, settings.ingest.max_image_pixels)


def store_init_image(data: bytes, name: str, settings: Settings) -> str:
    """Store an uploaded init image as an asset (source ``uploaded``) and return its id; refuse non-images."""
    from index.ingest.store import store_bytes

    if not data:
        raise _invalid("init_image", "the upload is empty")
    _decode(io.BytesIO(data), settings.ingest.max_image_pixels)  # refuse a bad upload before storing anything
    suffix = Path(name).suffix.lower() or ".png"
    outcome = store_bytes(data, name=Path(name).name or f"init{suffix}", source="uploaded", settings=settings)
    if outcome.status == "failed" or outcome.asset_id is None:
        raise _invalid("init_image", outcome.reason or "not an image")
    return outcome.asset_id


def prepare(data: Mapping[str, Any], settings: Settings) -> tuple[GeneratorSpec, ResolvedParams]:
    """Return the generator and fully resolved parameters for a request, or raise InvalidGenerationParams.

    In embedded mode (no broker) the generator's weights must be on this machine; in production the workers may
    hold weights the API machine lacks, so that is checked when the job runs. GeneratorUnavailable says how to fix.
    """
    ensure_user_generators(settings)
    request = parse_request(data)
    try:
        spec = resolve_generator(request)
    except UnknownGenerator as exc:
        raise _invalid("generator", str(exc)) from None
    params = validate_for(request, spec)
    if params.init_image is not None:
        load_init_image(params.init_image, settings)
    if not settings.broker_url and not weights_available(spec):
        raise GeneratorUnavailable(
            f"generator {spec.name!r} has no weights on this machine ({spec.model!r}); download them where you have "
            "access (`hf download <model>`), copy the Hugging Face cache here, or name another generator "
            "(`sensorium generate --list`)" + _random_hint(spec.task)
        )
    return spec, params


def _random_hint(task: str) -> str:
    alternative = random_alternative(task)
    return f"; to try {task} without weights: --generator {alternative} (its output is noise)" if alternative else ""


def submit_generation(
    data: Mapping[str, Any],
    *,
    owner_key_id: str | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    settings: Settings | None = None,
) -> Job:
    """Validate a generation request and submit it as a ``generate`` job on the ``gpu`` queue; return the job.

    ``data`` is the request body (GenerationRequest fields; a ``callback_url`` key is taken out of it). Raises
    InvalidGenerationParams, GeneratorUnavailable, or core.jobs' JobRequestError / IdempotencyConflict /
    QueueFull / JobDispatchError; in every error case no job runs.
    """
    from core.jobs import submit
    from core.settings import get_settings

    settings = settings or get_settings()
    body = dict(data)
    callback_url = body.pop("callback_url", None) or callback_url
    _, params = prepare(body, settings)
    return submit(
        JOB_KIND,
        params.model_dump(mode="json"),
        queue=JOB_QUEUE,
        # The request as sent identifies it for Idempotency-Key checks: resolved params hold fresh random seeds.
        fingerprint={**body, "callback_url": callback_url},
        owner_key_id=owner_key_id,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        settings=settings,
    )
