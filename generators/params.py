"""Generation requests: the API-facing model, and validation against one generator's defaults and limits."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from generators.registry import (
    AUDIO_TASKS,
    DEFAULT_SCHEDULER,
    IMAGE_TASKS,
    INIT_IMAGE_TASKS,
    VIDEO_TASKS,
    GeneratorSpec,
    Task,
    default_generator,
    get_generator,
    scheduler_names,
)

MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**32 - 1
# Hard ceilings for any generator; each spec's limits are usually much lower.
HARD_MAX_N = 64
HARD_MAX_SIDE = 4096
HARD_MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
HARD_MAX_DURATION_S = 600.0
HARD_MAX_FRAMES = 1024
HARD_MAX_FPS = 120
# Output sample rates a request may ask for (audio is resampled from the model's own rate when they differ).
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
# Output file formats per kind of task; the first is the default.
IMAGE_FORMATS = ("png",)
AUDIO_FORMATS = ("wav", "flac", "mp3")
VIDEO_FORMATS = ("mp4",)


class InvalidGenerationParams(ValueError):
    """A request breaks a rule; ``errors`` lists (field, reason) pairs, ``field``/``reason`` give the first."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        if not errors:
            raise ValueError("InvalidGenerationParams needs at least one error")
        self.errors = errors
        self.field, self.reason = errors[0]
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))


class GenerationRequest(BaseModel):
    """What a client asks for; fields left out take the generator's defaults."""

    model_config = ConfigDict(extra="forbid")

    generator: str | None = Field(default=None, description="Generator name; omitted means default_generator().")
    task: Task | None = Field(
        default=None,
        description="Task whose default generator to use when no generator is named; omitted means text-to-image "
        "(image-to-image when init_image is set). Must match the named generator's task if both are given.",
    )
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description=(
            "Text prompt. Stable Diffusion's CLIP text encoder reads 77 tokens (about 50-60 words); the rest is "
            "truncated, logged as a warning and recorded as prompt_truncated in each output's provenance."
        ),
    )
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    n: int = Field(default=1, ge=1, le=HARD_MAX_N, description="Number of images; output i uses seed + i.")
    width: int | None = Field(default=None, ge=8, le=HARD_MAX_SIDE, multiple_of=8)
    height: int | None = Field(default=None, ge=8, le=HARD_MAX_SIDE, multiple_of=8)
    steps: int | None = Field(default=None, ge=1, le=HARD_MAX_STEPS)
    guidance_scale: float | None = Field(default=None, ge=0, le=MAX_GUIDANCE)
    scheduler: str | None = Field(default=None, description="Scheduler name; 'default' keeps the model's own.")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Omitted means a random seed.")
    strength: float | None = Field(
        default=None, gt=0, le=1, description="Image-to-image only: how far to move away from the init image."
    )
    init_image: str | None = Field(
        default=None, min_length=1, description="Image-to-image and image-to-video only: an image asset id."
    )
    duration_s: float | None = Field(
        default=None, gt=0, le=HARD_MAX_DURATION_S, description="Audio: length in seconds. Video: sets num_frames."
    )
    num_frames: int | None = Field(default=None, ge=1, le=HARD_MAX_FRAMES, description="Video only: frame count.")
    fps: int | None = Field(default=None, ge=1, le=HARD_MAX_FPS, description="Video only: frames per second.")
    sample_rate: int | None = Field(
        default=None, description=f"Audio only: output sample rate in Hz, one of {SAMPLE_RATES}; omitted: default."
    )
    output_format: str | None = Field(
        default=None,
        description=f"Output file format: images {IMAGE_FORMATS}, audio {AUDIO_FORMATS}, video {VIDEO_FORMATS}.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must contain non-whitespace text")
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _blank_negative_is_none(cls, value: str | None) -> str | None:
        # An empty negative prompt means "none"; keeping "" would make provenance claim one was used.
        return value if value and value.strip() else None

    @field_validator("sample_rate")
    @classmethod
    def _standard_sample_rate(cls, value: int | None) -> int | None:
        if value is not None and value not in SAMPLE_RATES:
            raise ValueError(f"{value} Hz is not supported; choose one of {', '.join(map(str, SAMPLE_RATES))}")
        return value


class ResolvedParams(BaseModel):
    """A validated request with every default filled in and one seed per output; JSON-serialisable for jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generator: str
    prompt: str
    negative_prompt: str | None
    n: int
    width: int | None  # None for audio
    height: int | None
    steps: int
    guidance_scale: float
    scheduler: str
    seeds: tuple[int, ...]
    strength: float | None = None
    init_image: str | None = None
    duration_s: float | None = None  # audio
    sample_rate: int | None = None  # audio; None means the model's own rate
    num_frames: int | None = None  # video
    fps: int | None = None  # video
    output_format: str = IMAGE_FORMATS[0]

    @model_validator(mode="after")
    def _one_seed_per_output(self) -> ResolvedParams:
        if len(self.seeds) != self.n:
            raise ValueError(f"expected {self.n} seeds, got {len(self.seeds)}")
        return self


def parse_request(data: Mapping[str, Any]) -> GenerationRequest:
    """Return a GenerationRequest from raw data, turning pydantic errors into InvalidGenerationParams."""
    try:
        return GenerationRequest.model_validate(data)
    except ValidationError as exc:
        errors = [(".".join(str(part) for part in err["loc"]) or "request", err["msg"]) for err in exc.errors()]
        raise InvalidGenerationParams(errors) from exc


def resolve_generator(request: GenerationRequest) -> GeneratorSpec:
    """Return the spec a request names, or the default one for its task (image-to-image when init_image is set)."""
    if request.generator is not None:
        return get_generator(request.generator)
    if request.task is not None:
        return default_generator(request.task)
    return default_generator("image-to-image" if request.init_image is not None else "text-to-image")


def _size(request: GenerationRequest, spec: GeneratorSpec, errors: list[tuple[str, str]]) -> tuple[int, int]:
    """Return the width and height for an image or video request, adding any rule they break to ``errors``."""
    d, lim = spec.defaults, spec.limits
    width = request.width if request.width is not None else d.width
    height = request.height if request.height is not None else d.height
    # Blame the field the request set: a default cannot be the client's mistake.
    size_field = "height" if request.width is None and request.height is not None else "width"
    if width * height > lim.max_pixels:
        errors.append((size_field, f"{width}x{height} = {width * height} pixels exceeds max_pixels {lim.max_pixels}"))
    if width % lim.size_multiple or height % lim.size_multiple:
        odd = "width" if width % lim.size_multiple else "height"
        errors.append((odd, f"{width}x{height}: width and height must be multiples of {lim.size_multiple} here"))
    if lim.fixed_size and (width, height) != (d.width, d.height):
        errors.append((size_field, f"{spec.name!r} only generates {d.width}x{d.height}"))
    return width, height


def _frames(request: GenerationRequest, spec: GeneratorSpec, fps: int, errors: list[tuple[str, str]]) -> int:
    """Return the video's frame count, from num_frames or from duration_s at ``fps``, adding errors it breaks."""
    lim = spec.limits
    step = lim.frames_step
    if request.duration_s is not None and request.num_frames is not None:
        errors.append(("duration_s", "give duration_s or num_frames, not both"))
    if request.duration_s is not None:
        field, wanted = "duration_s", max(1, round(request.duration_s * fps))
        # The nearest count the model can make: 1 + a multiple of frames_step.
        frames = 1 + round((wanted - 1) / step) * step
    else:
        field = "num_frames"
        frames = request.num_frames if request.num_frames is not None else spec.defaults.num_frames or 1
        if (frames - 1) % step:
            examples = ", ".join(str(1 + step * k) for k in range(1, 4))
            errors.append(
                ("num_frames", f"{frames} is not 1 + a multiple of {step} for {spec.name!r} (e.g. {examples})")
            )
    if frames > lim.max_frames:
        at = f" ({frames} frames at {fps} fps)" if field == "duration_s" else ""
        errors.append((field, f"{frames} frames{at} exceed max_frames {lim.max_frames} for {spec.name!r}"))
    return frames


def _output_format(request: GenerationRequest, formats: tuple[str, ...], errors: list[tuple[str, str]]) -> str:
    if request.output_format is None:
        return formats[0]
    chosen = request.output_format.lower().lstrip(".")
    if chosen not in formats:
        errors.append(
            ("output_format", f"{request.output_format!r} is not available here; choose {', '.join(formats)}")
        )
    return chosen


def validate_for(request: GenerationRequest, spec: GeneratorSpec) -> ResolvedParams:
    """Return the request resolved against ``spec``, or raise InvalidGenerationParams listing every problem."""
    errors: list[tuple[str, str]] = []
    d, lim = spec.defaults, spec.limits
    is_image, is_audio, is_video = spec.task in IMAGE_TASKS, spec.task in AUDIO_TASKS, spec.task in VIDEO_TASKS

    if request.generator is not None and request.generator != spec.name:
        errors.append(("generator", f"request names {request.generator!r} but was validated for {spec.name!r}"))
    if request.task is not None and request.task != spec.task:
        errors.append(("task", f"{spec.name!r} is a {spec.task} generator, not {request.task}"))

    # Fields that only some tasks read: sending one elsewhere is a mistake worth naming, not silently ignoring.
    foreign = {
        "width": not is_audio,
        "height": not is_audio,
        "duration_s": not is_image,
        "num_frames": is_video,
        "fps": is_video,
        "sample_rate": is_audio,
    }
    for name, allowed in foreign.items():
        if not allowed and getattr(request, name) is not None:
            errors.append((name, f"{spec.name!r} is a {spec.task} generator; {name} does not apply"))

    width: int | None = None
    height: int | None = None
    if not is_audio:
        width, height = _size(request, spec, errors)

    steps = request.steps if request.steps is not None else d.steps
    if steps > lim.max_steps:
        errors.append(("steps", f"{steps} exceeds max_steps {lim.max_steps} for {spec.name!r}"))
    if request.n > lim.max_n:
        errors.append(("n", f"{request.n} exceeds max_n {lim.max_n} for {spec.name!r}"))

    scheduler = request.scheduler if request.scheduler is not None else d.scheduler
    if scheduler not in scheduler_names():
        errors.append(("scheduler", f"unknown scheduler {scheduler!r}; known: {', '.join(scheduler_names())}"))
    elif not is_image and scheduler != DEFAULT_SCHEDULER:
        # Audio and video models pair with schedulers of their own kind (EDM, CogVideoX DDIM); swaps break them.
        errors.append(("scheduler", f"{spec.task} generators run their model's own scheduler; use 'default'"))

    guidance = request.guidance_scale if request.guidance_scale is not None else d.guidance_scale
    # diffusers silently ignores the negative prompt without classifier-free guidance (scale <= 1).
    if request.negative_prompt is not None and guidance <= 1:
        errors.append(("negative_prompt", f"has no effect unless guidance_scale > 1 (it is {guidance})"))

    strength: float | None = None
    if spec.task == "image-to-image":
        strength = request.strength if request.strength is not None else d.strength
        # diffusers denoises int(steps * strength) steps and fails when that is 0.
        if strength is not None and int(steps * strength) < 1:
            errors.append(("strength", f"steps * strength = {steps} * {strength} runs no denoising step; raise either"))
    elif request.strength is not None:
        errors.append(("strength", f"{spec.name!r} is {spec.task}; strength is only for image-to-image"))
    if spec.task in INIT_IMAGE_TASKS:
        if request.init_image is None:
            errors.append(("init_image", f"{spec.name!r} is {spec.task} and needs an init image"))
    elif request.init_image is not None:
        errors.append(("init_image", f"{spec.name!r} is {spec.task}; init_image is only for image-to-image/-video"))

    duration_s: float | None = None
    sample_rate: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    if is_audio:
        duration_s = request.duration_s if request.duration_s is not None else d.duration_s
        if duration_s is not None and duration_s > lim.max_duration_s:
            errors.append(
                ("duration_s", f"{duration_s} s exceeds max_duration_s {lim.max_duration_s} for {spec.name!r}")
            )
        sample_rate = request.sample_rate if request.sample_rate is not None else d.sample_rate
        output_format = _output_format(request, AUDIO_FORMATS, errors)
    elif is_video:
        fps = request.fps if request.fps is not None else d.fps or 1
        if fps > lim.max_fps:
            errors.append(("fps", f"{fps} exceeds max_fps {lim.max_fps} for {spec.name!r}"))
        num_frames = _frames(request, spec, fps, errors)
        output_format = _output_format(request, VIDEO_FORMATS, errors)
    else:
        output_format = _output_format(request, IMAGE_FORMATS, errors)

    if errors:
        raise InvalidGenerationParams(errors)

    first_seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    return ResolvedParams(
        generator=spec.name,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        n=request.n,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=guidance,
        scheduler=scheduler,
        # Consecutive seeds, wrapping at 2**32, so any single output can be rerun alone with n=1.
        seeds=tuple((first_seed + i) % (MAX_SEED + 1) for i in range(request.n)),
        strength=strength,
        init_image=request.init_image,
        duration_s=duration_s,
        sample_rate=sample_rate,
        num_frames=num_frames,
        fps=fps,
        output_format=output_format,
    )
