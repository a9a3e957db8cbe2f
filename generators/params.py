"""Generation requests: the API-facing model, and validation against one generator's defaults and limits."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from generators.registry import GeneratorSpec, default_generator, get_generator, scheduler_names

MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**32 - 1
# Hard ceilings for any generator; each spec's limits are usually much lower.
HARD_MAX_N = 64
HARD_MAX_SIDE = 4096
HARD_MAX_STEPS = 1000
MAX_GUIDANCE = 50.0


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
    init_image: str | None = Field(default=None, min_length=1, description="Image-to-image only: an asset id.")

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


class ResolvedParams(BaseModel):
    """A validated request with every default filled in and one seed per output; JSON-serialisable for jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generator: str
    prompt: str
    negative_prompt: str | None
    n: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    scheduler: str
    seeds: tuple[int, ...]
    strength: float | None = None
    init_image: str | None = None

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
    return default_generator("image-to-image" if request.init_image is not None else "text-to-image")


def validate_for(request: GenerationRequest, spec: GeneratorSpec) -> ResolvedParams:
    """Return the request resolved against ``spec``, or raise InvalidGenerationParams listing every problem."""
    errors: list[tuple[str, str]] = []
    d, lim = spec.defaults, spec.limits

    if request.generator is not None and request.generator != spec.name:
        errors.append(("generator", f"request names {request.generator!r} but was validated for {spec.name!r}"))
    if spec.task not in ("text-to-image", "image-to-image"):
        errors.append(("generator", f"{spec.name!r} is a {spec.task} generator; these parameters are for images"))

    width = request.width if request.width is not None else d.width
    height = request.height if request.height is not None else d.height
    if width * height > lim.max_pixels:
        size_field = "height" if request.width is None and request.height is not None else "width"
        errors.append((size_field, f"{width}x{height} = {width * height} pixels exceeds max_pixels {lim.max_pixels}"))

    steps = request.steps if request.steps is not None else d.steps
    if steps > lim.max_steps:
        errors.append(("steps", f"{steps} exceeds max_steps {lim.max_steps} for {spec.name!r}"))
    if request.n > lim.max_n:
        errors.append(("n", f"{request.n} exceeds max_n {lim.max_n} for {spec.name!r}"))

    scheduler = request.scheduler if request.scheduler is not None else d.scheduler
    if scheduler not in scheduler_names():
        errors.append(("scheduler", f"unknown scheduler {scheduler!r}; known: {', '.join(scheduler_names())}"))

    guidance = request.guidance_scale if request.guidance_scale is not None else d.guidance_scale
    # diffusers silently ignores the negative prompt without classifier-free guidance (scale <= 1).
    if request.negative_prompt is not None and guidance <= 1:
        errors.append(("negative_prompt", f"has no effect unless guidance_scale > 1 (it is {guidance})"))

    strength: float | None = None
    if spec.task == "image-to-image":
        if request.init_image is None:
            errors.append(("init_image", f"{spec.name!r} is image-to-image and needs an init image"))
        strength = request.strength if request.strength is not None else d.strength
        # diffusers denoises int(steps * strength) steps and fails when that is 0.
        if strength is not None and int(steps * strength) < 1:
            errors.append(("strength", f"steps * strength = {steps} * {strength} runs no denoising step; raise either"))
    else:
        if request.init_image is not None:
            errors.append(("init_image", f"{spec.name!r} is {spec.task}; init_image is only for image-to-image"))
        if request.strength is not None:
            errors.append(("strength", f"{spec.name!r} is {spec.task}; strength is only for image-to-image"))

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
    )
