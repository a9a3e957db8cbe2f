"""The ``generate`` job handler: run the pipeline for each output seed and store every output as an indexed asset.

Idempotent by job id: each stored output is checkpointed on the job, a retry skips outputs already stored (also
found by their name ``<prompt slug>-<job id[:8]>-<index>.<format>``), and the blob store dedupes by content, so a retry never makes a
second asset. The Celery task that calls this is generic (core/jobs/worker.py runs any kind listed in core.jobs.HANDLERS).
"""

from __future__ import annotations

import io
import re
import time
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import Asset
from core.jobs import JobCanceled, JobContext, JobFailed
from generators.params import InvalidGenerationParams, ResolvedParams
from generators.registry import MEDIA_TASKS, GeneratorSpec, GeneratorUnavailable, UnknownGenerator, get_generator
from generators.service import ensure_user_generators, load_init_image
from index.encoders.base import EncoderWeightsUnavailable
from index.library import ModelMismatchError

if TYPE_CHECKING:
    from PIL import Image

    from core.settings import Settings


_SLUG_CHARS = 48


def output_name(job_id: str, index: int, fmt: str = "png", prompt: str = "") -> str:
    """Return the file name output ``index`` of a job is stored under: ``<prompt slug>-<job id[:8]>-<index>.<fmt>``.

    The prompt makes the name readable; the job id's first characters keep it unique to the job (retries find
    their outputs by it); the whole job id is in the asset's metadata.
    """
    words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode().lower())
    slug = "-".join(words)[:_SLUG_CHARS].strip("-") or "output"
    return f"{slug}-{job_id[:8]}-{index}.{fmt}"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _stored_earlier(ctx: JobContext, params: ResolvedParams) -> dict[int, dict[str, Any]]:
    """Return the outputs earlier attempts stored: from the job's checkpoint, and on retries by output name."""
    done = {int(o["index"]): dict(o) for o in ctx.result.get("outputs", []) if o.get("asset_id")}
    if ctx.attempt > 1:
        # A crash between storing an output and checkpointing it leaves an asset the checkpoint does not list.
        names = {
            output_name(ctx.job_id, i, params.output_format, params.prompt): i for i in range(params.n) if i not in done
        }
        if names:
            with read_session(ctx.settings) as session:
                rows = session.execute(
                    select(Asset.id, Asset.name).where(
                        Asset.name.in_(list(names)), Asset.source == "generated", Asset.status == "indexed"
                    )
                ).all()
            for asset_id, name in rows:
                index = names[name]
                done[index] = {"index": index, "asset_id": asset_id, "seed": params.seeds[index]}
    return done


def _result(outputs: dict[int, dict[str, Any]], timings: dict[str, float]) -> dict[str, Any]:
    ordered = [outputs[i] for i in sorted(outputs)]
    return {
        "asset_ids": [o["asset_id"] for o in ordered],
        "seeds": [o["seed"] for o in ordered],
        "outputs": ordered,
        "timings": {k: round(v, 6) for k, v in timings.items()},
    }


def _generate_one(
    spec: GeneratorSpec,
    params: ResolvedParams,
    seed: int,
    settings: Settings,
    init_image: Image.Image | None,
    on_progress: Callable[[int, int], None],
    should_cancel: Callable[[], bool],
) -> tuple[bytes, dict[str, Any]]:
    """Return one output's file bytes and provenance: PNG for images, encoded audio or video for media tasks."""
    single = params.model_copy(update={"n": 1, "seeds": (seed,)})
    data_dir, device, offload = settings.resolved_data_dir(), settings.generators.device, settings.generators.offload
    if spec.task in MEDIA_TASKS:
        from generators.media_pipelines import run_media_generation

        (media,) = run_media_generation(
            spec, single, data_dir, on_progress, should_cancel, init_image=init_image, device=device, offload=offload
        )
        return media.data, media.params
    from generators.pipelines import run_generation

    (generated,) = run_generation(
        spec, single, data_dir, init_image, on_progress, should_cancel, device=device, offload=offload
    )
    return _png(generated.image), generated.params


def run_generate_job(ctx: JobContext) -> dict[str, Any]:
    """Generate every output of the job, store each as a generated asset; return asset ids, seeds and timings."""
    from generators.pipelines import GenerationCanceled
    from index.ingest.store import store_bytes

    settings = ctx.settings
    try:
        ensure_user_generators(settings)
        params = ResolvedParams.model_validate(ctx.params)
        spec = get_generator(params.generator)
        init_image = load_init_image(params.init_image, settings) if params.init_image is not None else None
    except (ValidationError, UnknownGenerator, GeneratorUnavailable, InvalidGenerationParams) as exc:
        raise JobFailed(str(exc)) from None

    outputs = _stored_earlier(ctx, params)
    timings = {"pipeline_s": 0.0, "store_s": 0.0, **ctx.result.get("timings", {})}
    for index, seed in enumerate(params.seeds):
        if index in outputs:
            continue
        steps_done = 0

        def on_progress(done: int, total: int, index: int = index) -> None:
            nonlocal steps_done
            steps_done = done
            ctx.progress((index + done / total) / params.n)

        started = time.perf_counter()
        try:
            data, provenance = _generate_one(spec, params, seed, settings, init_image, on_progress, ctx.should_cancel)
        except GenerationCanceled:
            raise JobCanceled(
                f"canceled during output {index + 1}/{params.n} after {steps_done} steps",
                result=_result(outputs, timings),
            ) from None
        except GeneratorUnavailable as exc:
            raise JobFailed(str(exc)) from None
        timings["pipeline_s"] += time.perf_counter() - started

        # Provenance: everything needed to reproduce this output, and which job made it.
        metadata = {**provenance, "index": index, "n": params.n, "job_id": ctx.job_id}
        started = time.perf_counter()
        try:
            outcome = store_bytes(
                data,
                name=output_name(ctx.job_id, index, params.output_format, params.prompt),
                source="generated",
                metadata=metadata,
                settings=settings,
            )
        except (EncoderWeightsUnavailable, ModelMismatchError) as exc:
            raise JobFailed(f"the output cannot be indexed: {exc}") from None
        timings["store_s"] += time.perf_counter() - started
        if outcome.status == "failed" or outcome.asset_id is None:
            raise JobFailed(f"output {index + 1}/{params.n} could not be stored: {outcome.reason}")
        outputs[index] = {"index": index, "asset_id": outcome.asset_id, "seed": seed}
        if len(outputs) < params.n:
            # The last output needs no checkpoint: the job's final result records it in the same write.
            ctx.checkpoint(_result(outputs, timings))
    return _result(outputs, timings)
