"""Load diffusers pipelines lazily (cached per process) and run image generations with progress and cancel."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generators.components import load_components
from generators.params import ResolvedParams
from generators.registry import (
    DEFAULT_SCHEDULER,
    SCHEDULERS,
    GeneratorSpec,
    GeneratorUnavailable,
    local_model_path,
    random_alternative,
)
from generators.tiny_media import build_tiny, tiny_folder_name

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class GenerationCanceled(Exception):
    """should_cancel() returned True; the generation stopped at the next step boundary."""


@dataclass(frozen=True)
class GeneratedImage:
    """One output image, the seed that reproduces it, and its provenance parameters."""

    image: Image.Image
    seed: int
    params: dict[str, Any]


@dataclass
class LoadedPipeline:
    """A loaded pipeline with where it runs and its schedulers; hold ``lock`` while calling it."""

    pipe: Any
    device: str
    dtype: str
    default_scheduler: Any
    schedulers: dict[str, Any] = field(default_factory=dict)
    # A diffusers pipeline keeps per-call state (scheduler timesteps, step counters): one run at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHE: dict[tuple[GeneratorSpec, str, bool, str], LoadedPipeline] = {}
_CACHE_LOCK = threading.Lock()


def resolve_device(device: str = "auto") -> str:
    """Return ``device``, or for "auto" the best available one: cuda, then mps, then cpu."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pipeline(spec: GeneratorSpec, data_dir: Path, device: str = "auto", offload: bool = False) -> Any:
    """Return the diffusers pipeline for ``spec`` on ``device``, loading it once per process.

    ``offload`` enables model CPU offload (less GPU memory, slower); it only applies on CUDA.
    Raises GeneratorUnavailable when the weights or the pipeline class are missing.
    """
    return load_cached(spec, data_dir, device, offload).pipe


def load_cached(spec: GeneratorSpec, data_dir: Path, device: str, offload: bool) -> LoadedPipeline:
    """Return the process-wide LoadedPipeline for ``spec`` on ``device``; see load_pipeline."""
    device = resolve_device(device)
    offload = offload and device.startswith("cuda")
    source = str(data_dir / "models" / tiny_folder_name(spec.pipeline_class)) if spec.is_random else spec.model
    key = (spec, device, offload, source)
    # One global lock: loading the same model twice at once would double peak memory for nothing.
    with _CACHE_LOCK:
        loaded = _CACHE.get(key)
        if loaded is None:
            loaded = _CACHE[key] = _load_uncached(spec, Path(source) if spec.is_random else None, device, offload)
        return loaded


def _load_uncached(spec: GeneratorSpec, tiny_dest: Path | None, device: str, offload: bool) -> LoadedPipeline:
    import diffusers
    import torch

    pipeline_class = getattr(diffusers, spec.pipeline_class, None)
    if pipeline_class is None or not hasattr(pipeline_class, "from_pretrained"):
        raise GeneratorUnavailable(
            f"generator {spec.name!r}: diffusers {diffusers.__version__} has no pipeline class {spec.pipeline_class!r}"
        )
    dtype_name = spec.dtype
    if dtype_name == "auto":
        dtype_name = "float16" if device.startswith("cuda") else "float32"
    dtype = getattr(torch, dtype_name)

    local_files_only = False
    if tiny_dest is not None:
        source = str(build_tiny(spec.pipeline_class, tiny_dest))
    else:
        path = local_model_path(spec.model)
        if path is not None and not (path / "model_index.json").is_file():
            raise GeneratorUnavailable(_how_to(spec, f"{path} holds no diffusers model_index.json"))
        source = str(path) if path is not None else spec.model
        local_files_only = path is None and _hub_offline()
    try:
        components = load_components(spec.pipeline_class, source, dtype, local_files_only)
        pipe = pipeline_class.from_pretrained(source, dtype=dtype, local_files_only=local_files_only, **components)
    except (OSError, ValueError) as exc:
        # diffusers raises OSError (hub cache miss, missing files) or ValueError (a malformed id or path).
        raise GeneratorUnavailable(_how_to(spec, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from exc
    except ImportError as exc:
        # A component needs an optional package (e.g. Stable Audio Open's scheduler needs torchsde).
        reason = " ".join(str(exc).split())
        raise GeneratorUnavailable(f"generator {spec.name!r} needs a package that is not installed: {reason}") from exc

    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    # Progress reaches the job through on_progress; tqdm bars would only flood worker logs.
    pipe.set_progress_bar_config(disable=True)
    logger.info("loaded generator %s (%s) on %s as %s", spec.name, source, device, dtype_name)
    return LoadedPipeline(pipe=pipe, device=device, dtype=dtype_name, default_scheduler=pipe.scheduler)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE at import; the environment may have changed since.
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def _how_to(spec: GeneratorSpec, reason: str) -> str:
    path = local_model_path(spec.model)
    if path is not None:
        return (
            f"generator {spec.name!r} is unavailable: {reason}. Put a diffusers model folder (with model_index.json) "
            f"at {path}, e.g. `hf download <hub id> --local-dir {path}` on a connected machine, or point the "
            f"generator's model at another folder in a generators file."
        )
    return (
        f"generator {spec.name!r} is unavailable: the weights of {spec.model!r} are not on this machine ({reason}). "
        f"On a connected machine run `hf download {spec.model}` (older clients: `huggingface-cli download "
        f"{spec.model}`) and copy the Hugging Face cache here with HF_HOME pointing at it; or download with "
        f"`--local-dir DIR` and set this generator's model to DIR in a generators file. "
        + _no_weights_hint(spec)
    )


def _no_weights_hint(spec: GeneratorSpec) -> str:
    alternative = random_alternative(spec.task)
    if alternative is None:
        return ""
    return f"To try the {spec.task} path without weights: --generator {alternative} (its output is noise)."


def _scheduler(loaded: LoadedPipeline, name: str) -> Any:
    if name == DEFAULT_SCHEDULER:
        return loaded.default_scheduler
    scheduler = loaded.schedulers.get(name)
    if scheduler is None:
        import diffusers

        class_name, overrides = SCHEDULERS[name]
        # Built from the model's own scheduler config so its beta schedule and timestep spacing carry over.
        scheduler = getattr(diffusers, class_name).from_config(loaded.default_scheduler.config, **overrides)
        loaded.schedulers[name] = scheduler
    return scheduler


def _prompt_truncated(pipe: Any, prompt: str) -> bool:
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return False
    # +2: the start and end tokens the pipeline adds around the prompt.
    return len(tokenizer.tokenize(prompt)) + 2 > int(tokenizer.model_max_length)


def _step_callback(
    index: int, n: int, on_progress: ProgressCallback | None, should_cancel: CancelCheck | None
) -> Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]:
    def callback(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        # num_timesteps is the real step count (image-to-image runs only int(steps * strength) of them).
        per_output = int(pipe.num_timesteps)
        if on_progress is not None:
            on_progress(index * per_output + step + 1, n * per_output)
        # Raising here (rather than setting pipe._interrupt) also skips the VAE decode of a discarded image.
        if should_cancel is not None and should_cancel():
            raise GenerationCanceled(f"canceled at step {step + 1} of output {index + 1}/{n}")
        return tensors

    return callback


def run_generation(
    spec: GeneratorSpec,
    params: ResolvedParams,
    data_dir: Path,
    init_image: Image.Image | None = None,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    *,
    device: str = "auto",
    offload: bool = False,
) -> list[GeneratedImage]:
    """Return ``params.n`` images generated with ``spec``, one pipeline call per output seed.

    ``on_progress(done, total)`` is called after every denoising step, counting steps over all outputs.
    ``should_cancel()`` is checked after every step and before each output; True raises GenerationCanceled.
    Each output runs alone with its own seeded CPU generator, so rerunning any one seed with n=1 gives the same
    pixels on the same device, and the starting noise is the same on every device.
    """
    if params.generator != spec.name:
        raise ValueError(f"params were validated for {params.generator!r}, not {spec.name!r}")
    if spec.task not in ("text-to-image", "image-to-image"):
        raise ValueError(f"run_generation handles image generators; {spec.name!r} is {spec.task}")
    if (spec.task == "image-to-image") != (init_image is not None):
        raise ValueError(f"{spec.name!r} is {spec.task}: init_image must be given exactly for image-to-image")
    if params.width is None or params.height is None:
        raise ValueError("image generation needs a width and height")

    import diffusers
    import torch
    from PIL.Image import Resampling

    size = (params.width, params.height)
    if init_image is not None:
        # The output takes the init image's size, so the validated width/height are enforced by resizing it.
        init_image = init_image.convert("RGB")
        if init_image.size != size:
            init_image = init_image.resize(size, Resampling.LANCZOS)

    loaded = load_cached(spec, data_dir, device, offload)
    outputs: list[GeneratedImage] = []
    with loaded.lock:
        pipe = loaded.pipe
        pipe.scheduler = _scheduler(loaded, params.scheduler)
        truncated = _prompt_truncated(pipe, params.prompt)
        if truncated:
            logger.warning("generator %s: prompt is longer than the text encoder's window and was truncated", spec.name)
        provenance = {
            "generator": spec.name,
            "task": spec.task,
            "model": spec.model,
            "pipeline_class": spec.pipeline_class,
            "prompt": params.prompt,
            "prompt_truncated": truncated,
            "negative_prompt": params.negative_prompt,
            "width": params.width,
            "height": params.height,
            "steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "scheduler": params.scheduler,
            "scheduler_class": type(pipe.scheduler).__name__,
            "strength": params.strength,
            "init_image": params.init_image,
            "n": params.n,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "diffusers_version": diffusers.__version__,
        }
        for index, seed in enumerate(params.seeds):
            if should_cancel is not None and should_cancel():
                raise GenerationCanceled(f"canceled before output {index + 1}/{params.n}")
            call: dict[str, Any] = {
                "prompt": params.prompt,
                "negative_prompt": params.negative_prompt,
                "num_inference_steps": params.steps,
                "guidance_scale": params.guidance_scale,
                # A CPU generator gives the same starting noise on any device (diffusers moves it over).
                "generator": torch.Generator("cpu").manual_seed(seed),
                "callback_on_step_end": _step_callback(index, params.n, on_progress, should_cancel),
            }
            if init_image is not None:
                call.update(image=init_image, strength=params.strength)
            else:
                call.update(width=params.width, height=params.height)
            try:
                result = pipe(**call)
            except GenerationCanceled:
                # A call cut short skips the pipeline's own end-of-call cleanup (offload hooks, cached state).
                pipe.maybe_free_model_hooks()
                raise
            nsfw = getattr(result, "nsfw_content_detected", None)
            outputs.append(
                GeneratedImage(
                    image=result.images[0],
                    seed=seed,
                    params={**provenance, "seed": seed, "index": index, "nsfw_detected": nsfw[0] if nsfw else None},
                )
            )
    return outputs
