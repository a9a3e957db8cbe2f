"""Named generators: each is a small config naming a diffusers pipeline class, a model and its defaults and limits."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal["text-to-image", "image-to-image", "text-to-audio", "text-to-video", "image-to-video"]
IMAGE_TASKS: frozenset[str] = frozenset({"text-to-image", "image-to-image"})
AUDIO_TASKS: frozenset[str] = frozenset({"text-to-audio"})
VIDEO_TASKS: frozenset[str] = frozenset({"text-to-video", "image-to-video"})
MEDIA_TASKS: frozenset[str] = AUDIO_TASKS | VIDEO_TASKS
# Tasks whose requests start from an existing image asset (``init_image``).
INIT_IMAGE_TASKS: frozenset[str] = frozenset({"image-to-image", "image-to-video"})
DType = Literal["auto", "float16", "float32", "bfloat16"]

# The model string that means "build a tiny random pipeline of the spec's class locally" (offline tests and demos).
TINY_MODEL = "tiny-random"

# "default" keeps the scheduler the model ships with; the others are swapped in with `Cls.from_config`.
DEFAULT_SCHEDULER = "default"
SCHEDULERS: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "ddim": ("DDIMScheduler", {}),
        "pndm": ("PNDMScheduler", {}),
        "euler": ("EulerDiscreteScheduler", {}),
        "euler_a": ("EulerAncestralDiscreteScheduler", {}),
        "dpm++": ("DPMSolverMultistepScheduler", {}),
        "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
        "unipc": ("UniPCMultistepScheduler", {}),
        # No "lms": diffusers' LMSDiscreteScheduler needs scipy, which Sensorium does not install.
    }
)


def scheduler_names() -> tuple[str, ...]:
    """Return every scheduler name a request or spec may use, "default" first."""
    return (DEFAULT_SCHEDULER, *SCHEDULERS)


class UnknownGenerator(LookupError):
    """No generator is registered under the requested name."""


class GeneratorUnavailable(RuntimeError):
    """A generator's weights or pipeline class are not available on this machine."""


class GeneratorDefaults(BaseModel):
    """Parameters a request gets when it leaves them out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(default=512, ge=8, multiple_of=8)
    height: int = Field(default=512, ge=8, multiple_of=8)
    steps: int = Field(default=30, ge=1)
    guidance_scale: float = Field(default=7.5, ge=0)
    scheduler: str = DEFAULT_SCHEDULER
    strength: float | None = Field(default=None, gt=0, le=1)
    # Media only: audio has a duration and an output sample rate (None: the model's own); video has frames and fps.
    duration_s: float | None = Field(default=None, gt=0)
    sample_rate: int | None = Field(default=None, ge=8000, le=192_000)
    num_frames: int | None = Field(default=None, ge=1)
    fps: int | None = Field(default=None, ge=1)


class GeneratorLimits(BaseModel):
    """Upper bounds a request may not exceed (they bound GPU memory and time per job)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_pixels: int = Field(default=1024 * 1024, ge=64)
    max_steps: int = Field(default=150, ge=1)
    max_n: int = Field(default=8, ge=1)
    # Width and height must be multiples of this (the VAE's downscale times the transformer's patch size).
    size_multiple: int = Field(default=8, ge=8, multiple_of=8)
    # The model only generates its default size (learned positional embeddings, as in CogVideoX-5b-I2V).
    fixed_size: bool = False
    max_duration_s: float = Field(default=30.0, gt=0)
    max_frames: int = Field(default=64, ge=1)
    max_fps: int = Field(default=60, ge=1)
    # num_frames must be 1 + a multiple of this: CogVideoX decodes 4 frames per latent frame after the first.
    frames_step: int = Field(default=1, ge=1)


class GeneratorSpec(BaseModel):
    """One named generator; frozen and hashable so loaded pipelines can be cached by spec."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    task: Task
    pipeline_class: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    model: str = Field(min_length=1)
    dtype: DType = "auto"
    defaults: GeneratorDefaults = GeneratorDefaults()
    limits: GeneratorLimits = GeneratorLimits()
    description: str = ""

    @model_validator(mode="after")
    def _defaults_fit(self) -> GeneratorSpec:
        d, lim = self.defaults, self.limits
        if d.width * d.height > lim.max_pixels:
            raise ValueError(f"default size {d.width}x{d.height} exceeds max_pixels {lim.max_pixels}")
        if d.steps > lim.max_steps:
            raise ValueError(f"default steps {d.steps} exceed max_steps {lim.max_steps}")
        if d.scheduler not in scheduler_names():
            raise ValueError(f"unknown scheduler {d.scheduler!r}; known: {', '.join(scheduler_names())}")
        if (self.task == "image-to-image") != (d.strength is not None):
            raise ValueError("defaults.strength is required for image-to-image generators and only allowed there")
        self._media_defaults_fit()
        return self

    def _media_defaults_fit(self) -> None:
        d, lim = self.defaults, self.limits
        audio, video = self.task in AUDIO_TASKS, self.task in VIDEO_TASKS
        if audio != (d.duration_s is not None):
            raise ValueError("defaults.duration_s is required for audio generators and only allowed there")
        if d.sample_rate is not None and not audio:
            raise ValueError("defaults.sample_rate is only allowed for audio generators")
        if video != (d.num_frames is not None and d.fps is not None):
            raise ValueError(
                "defaults.num_frames and defaults.fps are required for video generators and only allowed there"
            )
        if d.duration_s is not None and d.duration_s > lim.max_duration_s:
            raise ValueError(f"default duration {d.duration_s} s exceeds max_duration_s {lim.max_duration_s}")
        if d.num_frames is not None and (d.num_frames > lim.max_frames or (d.num_frames - 1) % lim.frames_step):
            raise ValueError(
                f"default num_frames {d.num_frames} must be at most max_frames {lim.max_frames} "
                f"and 1 + a multiple of frames_step {lim.frames_step}"
            )
        if d.fps is not None and d.fps > lim.max_fps:
            raise ValueError(f"default fps {d.fps} exceeds max_fps {lim.max_fps}")
        if d.width % lim.size_multiple or d.height % lim.size_multiple:
            raise ValueError(
                f"default size {d.width}x{d.height} is not a multiple of size_multiple {lim.size_multiple}"
            )

    @property
    def is_random(self) -> bool:
        """Return True when the generator uses random weights (never picked as a default)."""
        return self.model == TINY_MODEL


_REGISTRY: dict[str, GeneratorSpec] = {}


def register(spec: GeneratorSpec, *, replace: bool = False) -> GeneratorSpec:
    """Add a generator to the registry and return it; an existing name needs ``replace=True``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"generator {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_generator(name: str) -> GeneratorSpec:
    """Return the spec registered under ``name`` or raise UnknownGenerator listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownGenerator(f"unknown generator {name!r}; known: {', '.join(_REGISTRY)}") from None


def list_generators(task: Task | None = None) -> list[GeneratorSpec]:
    """Return registered specs in registration order, optionally only those for one task."""
    return [spec for spec in _REGISTRY.values() if task is None or spec.task == task]


def random_alternative(task: str) -> str | None:
    """Return the name of a random-weight generator for ``task`` (runs without downloads), if one is registered."""
    return next((spec.name for spec in _REGISTRY.values() if spec.task == task and spec.is_random), None)


def describe_limits(task: str, defaults: dict[str, Any], limits: dict[str, Any]) -> tuple[str, str]:
    """Return (defaults, limits) of a generator as short text in the units of its task: seconds, frames or pixels."""
    n_steps = f"max n {limits['max_n']}, {limits['max_steps']} steps"
    if task in AUDIO_TASKS:
        return (
            f"{defaults['duration_s']} s, {defaults['steps']} steps",
            f"{limits['max_duration_s']:g} s; {n_steps}",
        )
    size = f"{defaults['width']}x{defaults['height']}"
    max_size = "fixed size" if limits["fixed_size"] else f"{limits['max_pixels']:,} px"
    if task in VIDEO_TASKS:
        return (
            f"{size}, {defaults['num_frames']} frames at {defaults['fps']} fps, {defaults['steps']} steps",
            f"{max_size}, {limits['max_frames']} frames, {limits['max_fps']} fps; {n_steps}",
        )
    return f"{size}, {defaults['steps']} steps", f"{max_size}; {n_steps}"


def local_model_path(model: str) -> Path | None:
    """Return the folder a model string names, or None when it is a hub id (or the tiny-random marker)."""
    if model == TINY_MODEL:
        return None
    path = Path(model).expanduser()
    # Like diffusers, an existing relative folder wins over a hub id of the same spelling.
    if path.is_absolute() or model.startswith(("./", "../", "~")) or path.exists():
        return path
    return None


def weights_available(spec: GeneratorSpec) -> bool:
    """Return True when the spec's weights are on this machine (local folder or hub cache); never downloads."""
    if spec.is_random:
        return True
    path = local_model_path(spec.model)
    if path is not None:
        return (path / "model_index.json").is_file()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(spec.model, "model_index.json"), str)


def default_generator(task: Task = "text-to-image") -> GeneratorSpec:
    """Return the generator used when a request names none.

    Rule: the first registered generator for ``task`` that is not random-weight and whose weights are on this
    machine; if none has its weights, the first non-random one anyway, so loading it raises GeneratorUnavailable
    with instructions. Random-weight generators (tiny-random) are never picked implicitly, because their output is
    noise: a caller must name them.
    """
    candidates = [spec for spec in list_generators(task) if not spec.is_random]
    if not candidates:
        raise UnknownGenerator(f"no generator with real weights is registered for task {task!r}")
    return next((spec for spec in candidates if weights_available(spec)), candidates[0])


def load_user_generators(path: Path) -> list[GeneratorSpec]:
    """Register the specs in a JSON or TOML file (replacing same-named ones) and return them.

    The file holds a list of specs, or a table with a ``generators`` list (TOML: ``[[generators]]``). Replacing is
    allowed so a file can point a built-in such as ``sd15`` at a local folder. Every spec is validated before any is
    registered, so a bad file changes nothing.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        data: Any = tomllib.loads(text)
    elif path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: generator files must end in .json or .toml")
    entries = data.get("generators") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of generators or a 'generators' list")
    specs: list[GeneratorSpec] = []
    for index, entry in enumerate(entries):
        try:
            specs.append(GeneratorSpec.model_validate(entry))
        except ValidationError as exc:
            raise ValueError(f"{path}: generator #{index}: {exc}") from exc
    return [register(spec, replace=True) for spec in specs]


def _builtin(**fields: Any) -> None:
    register(GeneratorSpec.model_validate(fields))


_TURBO_DEFAULTS = {"width": 512, "height": 512, "steps": 1, "guidance_scale": 0.0}
_TURBO_LIMITS = {"max_pixels": 768 * 768, "max_steps": 50, "max_n": 8}
_SD15_DEFAULTS = {"width": 512, "height": 512, "steps": 30, "guidance_scale": 7.5}
_SD15_LIMITS = {"max_pixels": 1024 * 1024, "max_steps": 150, "max_n": 8}
_TINY_DEFAULTS = {"width": 64, "height": 64, "steps": 2, "guidance_scale": 7.5}
_TINY_LIMITS = {"max_pixels": 256 * 256, "max_steps": 50, "max_n": 8}

# Registration order matters: default_generator() takes the first real generator with local weights.
_builtin(
    name="sd-turbo",
    task="text-to-image",
    pipeline_class="AutoPipelineForText2Image",
    model="stabilityai/sd-turbo",
    defaults=_TURBO_DEFAULTS,
    limits=_TURBO_LIMITS,
    description="SD-Turbo: one-step distilled Stable Diffusion 2.1, no classifier-free guidance.",
)
_builtin(
    name="sd15",
    task="text-to-image",
    pipeline_class="StableDiffusionPipeline",
    model="stable-diffusion-v1-5/stable-diffusion-v1-5",
    defaults=_SD15_DEFAULTS,
    limits=_SD15_LIMITS,
    description="Stable Diffusion 1.5, 30 steps with guidance 7.5.",
)
# Turbo image-to-image runs int(steps * strength) steps, so it needs 2 steps at strength 0.5 to run one.
_builtin(
    name="sd-turbo-img2img",
    task="image-to-image",
    pipeline_class="AutoPipelineForImage2Image",
    model="stabilityai/sd-turbo",
    defaults={**_TURBO_DEFAULTS, "steps": 2, "strength": 0.5},
    limits=_TURBO_LIMITS,
    description="SD-Turbo image-to-image.",
)
_builtin(
    name="sd15-img2img",
    task="image-to-image",
    pipeline_class="StableDiffusionImg2ImgPipeline",
    model="stable-diffusion-v1-5/stable-diffusion-v1-5",
    defaults={**_SD15_DEFAULTS, "strength": 0.75},
    limits=_SD15_LIMITS,
    description="Stable Diffusion 1.5 image-to-image.",
)
_builtin(
    name="tiny-random",
    task="text-to-image",
    pipeline_class="StableDiffusionPipeline",
    model=TINY_MODEL,
    defaults=_TINY_DEFAULTS,
    limits=_TINY_LIMITS,
    description="Tiny random-weight Stable Diffusion built offline; output is noise (tests, demos).",
)
_builtin(
    name="tiny-random-img2img",
    task="image-to-image",
    pipeline_class="StableDiffusionImg2ImgPipeline",
    model=TINY_MODEL,
    defaults={**_TINY_DEFAULTS, "strength": 0.5},
    limits=_TINY_LIMITS,
    description="Tiny random-weight image-to-image built offline; output is noise (tests, demos).",
)

# Audio and video. Defaults follow each model card; limits bound GPU memory and time per job.
_builtin(
    name="audioldm2",
    task="text-to-audio",
    pipeline_class="AudioLDM2Pipeline",
    model="cvssp/audioldm2",
    defaults={"steps": 200, "guidance_scale": 3.5, "duration_s": 10.0, "sample_rate": 16_000},
    limits={"max_steps": 500, "max_n": 4, "max_duration_s": 30.0},
    description="AudioLDM 2: text-to-audio (sound effects, ambience, music) at 16 kHz mono.",
)
_builtin(
    name="stable-audio-open",
    task="text-to-audio",
    pipeline_class="StableAudioPipeline",
    model="stabilityai/stable-audio-open-1.0",
    defaults={"steps": 200, "guidance_scale": 7.0, "duration_s": 10.0, "sample_rate": 44_100},
    # The model writes at most 47.55 s (its latent length); the weights are gated: accept the licence on the hub.
    limits={"max_steps": 500, "max_n": 4, "max_duration_s": 47.0},
    description="Stable Audio Open 1.0: text-to-audio and music at 44.1 kHz stereo, up to 47 s (needs torchsde).",
)
_builtin(
    name="cogvideox-2b",
    task="text-to-video",
    pipeline_class="CogVideoXPipeline",
    model="THUDM/CogVideoX-2b",
    defaults={"width": 720, "height": 480, "steps": 50, "guidance_scale": 6.0, "num_frames": 49, "fps": 8},
    limits={
        "max_pixels": 720 * 480,
        "max_steps": 100,
        "max_n": 2,
        "size_multiple": 16,
        "max_frames": 49,
        "frames_step": 4,
        "max_fps": 30,
    },
    description="CogVideoX 2B: 6 s text-to-video at 720x480, 49 frames at 8 fps.",
)
_builtin(
    name="text-to-video-ms",
    task="text-to-video",
    pipeline_class="TextToVideoSDPipeline",
    model="ali-vilab/text-to-video-ms-1.7b",
    defaults={"width": 256, "height": 256, "steps": 25, "guidance_scale": 9.0, "num_frames": 16, "fps": 8},
    limits={"max_pixels": 512 * 512, "max_steps": 100, "max_n": 4, "max_frames": 64, "max_fps": 30},
    description="ModelScope text-to-video 1.7B: short 256x256 clips (16 frames at 8 fps).",
)
_builtin(
    name="cogvideox-5b-i2v",
    task="image-to-video",
    pipeline_class="CogVideoXImageToVideoPipeline",
    model="THUDM/CogVideoX-5b-I2V",
    dtype="bfloat16",  # the precision the model card recommends for the 5B models
    defaults={"width": 720, "height": 480, "steps": 50, "guidance_scale": 6.0, "num_frames": 49, "fps": 8},
    limits={
        "max_pixels": 720 * 480,
        "max_steps": 100,
        "max_n": 2,
        "size_multiple": 16,
        "max_frames": 49,
        "frames_step": 4,
        "max_fps": 30,
        "fixed_size": True,
    },
    description="CogVideoX 5B image-to-video: animates an image asset following the prompt, 49 frames at 8 fps.",
)
_TINY_VIDEO_LIMITS = {"max_pixels": 128 * 128, "max_steps": 50, "max_n": 4, "max_frames": 33, "max_fps": 60}
_TINY_COG_DEFAULTS = {"width": 96, "height": 64, "steps": 2, "guidance_scale": 6.0, "num_frames": 9, "fps": 8}
_TINY_COG_LIMITS = {**_TINY_VIDEO_LIMITS, "size_multiple": 16, "frames_step": 4}
_builtin(
    name="tiny-random-audio",
    task="text-to-audio",
    pipeline_class="StableAudioPipeline",
    model=TINY_MODEL,
    defaults={"steps": 2, "guidance_scale": 7.0, "duration_s": 1.0, "sample_rate": 16_000},
    limits={"max_steps": 50, "max_n": 4, "max_duration_s": 2.0},
    description="Tiny random-weight Stable Audio built offline; output is noise (tests, demos).",
)
_builtin(
    name="tiny-random-audioldm2",
    task="text-to-audio",
    pipeline_class="AudioLDM2Pipeline",
    model=TINY_MODEL,
    defaults={"steps": 2, "guidance_scale": 3.5, "duration_s": 1.0, "sample_rate": 16_000},
    limits={"max_steps": 50, "max_n": 4, "max_duration_s": 4.0},
    description="Tiny random-weight AudioLDM 2 built offline; output is noise (tests, demos).",
)
_builtin(
    name="tiny-random-video",
    task="text-to-video",
    pipeline_class="TextToVideoSDPipeline",
    model=TINY_MODEL,
    defaults={"width": 64, "height": 64, "steps": 2, "guidance_scale": 7.5, "num_frames": 8, "fps": 8},
    limits=_TINY_VIDEO_LIMITS,
    description="Tiny random-weight text-to-video-synth built offline; output is noise (tests, demos).",
)
_builtin(
    name="tiny-random-cogvideox",
    task="text-to-video",
    pipeline_class="CogVideoXPipeline",
    model=TINY_MODEL,
    defaults=_TINY_COG_DEFAULTS,
    limits=_TINY_COG_LIMITS,
    description="Tiny random-weight CogVideoX built offline; output is noise (tests, demos).",
)
_builtin(
    name="tiny-random-image-to-video",
    task="image-to-video",
    pipeline_class="CogVideoXImageToVideoPipeline",
    model=TINY_MODEL,
    defaults=_TINY_COG_DEFAULTS,
    limits={**_TINY_COG_LIMITS, "fixed_size": True},
    description="Tiny random-weight CogVideoX image-to-video built offline; output is noise (tests, demos).",
)
