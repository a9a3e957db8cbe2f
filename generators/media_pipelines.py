"""Run text-to-audio, text-to-video and image-to-video generations with progress and cancel; encode each output.

Pipelines load through generators.pipelines (cached per process, fp16 on CUDA). diffusers' audio and video
pipelines disagree on argument names (``audio_end_in_s`` vs ``audio_length_in_s``; ``callback`` vs
``callback_on_step_end``), so each call is built from the signature of the loaded pipeline's ``__call__``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generators.media_encode import AUDIO_CODECS, VIDEO_MIME, encode_audio, encode_mp4, fit_length, resample
from generators.params import ResolvedParams
from generators.pipelines import CancelCheck, GenerationCanceled, ProgressCallback, load_cached
from generators.registry import AUDIO_TASKS, INIT_IMAGE_TASKS, MEDIA_TASKS, VIDEO_TASKS, GeneratorSpec

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedMedia:
    """One encoded output (audio or video file bytes), the seed that reproduces it, and its provenance."""

    data: bytes
    mime: str
    suffix: str
    seed: int
    params: dict[str, Any]


def _native_sample_rate(pipe: Any) -> int:
    """Return the rate the pipeline's waveforms come out at: the vocoder's (AudioLDM) or the audio VAE's."""
    for component in ("vocoder", "vae"):
        rate = getattr(getattr(getattr(pipe, component, None), "config", None), "sampling_rate", None)
        if rate:
            return int(rate)
    raise ValueError(f"{type(pipe).__name__} exposes no sampling rate (vocoder or vae config)")


def _sequence_window(pipe: Any, accepts: Mapping[str, inspect.Parameter]) -> int | None:
    """Return the prompt length the pipeline must be called with (CogVideoX: its positional table), else None."""
    window = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "max_text_seq_length", 0)
    return int(window) if window and "max_sequence_length" in accepts else None


def _text_window(pipe: Any, accepts: Mapping[str, inspect.Parameter]) -> int | None:
    """Return how many prompt tokens the text encoder reads, or None when the pipeline has no tokenizer."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return None
    return _sequence_window(pipe, accepts) or int(tokenizer.model_max_length)


def _prompt_truncated(pipe: Any, prompt: str, window: int | None) -> bool:
    if window is None:
        return False
    # Counted with the special tokens the pipeline adds (CLIP: start and end; T5: end).
    return len(pipe.tokenizer(prompt, truncation=False).input_ids) > window


def _progress_kwargs(
    accepts: Mapping[str, inspect.Parameter],
    index: int,
    n: int,
    steps: int,
    on_progress: ProgressCallback | None,
    should_cancel: CancelCheck | None,
) -> dict[str, Any]:
    """Return the call arguments that report each denoising step and stop when ``should_cancel()`` says so."""

    def report(done: int, per_output: int) -> None:
        if on_progress is not None:
            on_progress(index * per_output + done, n * per_output)
        # Raising here (rather than interrupting) also skips decoding an output that would be discarded.
        if should_cancel is not None and should_cancel():
            raise GenerationCanceled(f"canceled at step {done} of output {index + 1}/{n}")

    if "callback_on_step_end" in accepts:

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            report(step + 1, int(pipe.num_timesteps))
            return tensors

        return {"callback_on_step_end": on_step_end}
    if "callback" in accepts:
        # The older API: callback(step, timestep, latents) every callback_steps steps, for num_inference_steps.
        def callback(step: int, timestep: Any, latents: Any) -> None:
            report(step + 1, steps)

        return {"callback": callback, "callback_steps": 1}
    logger.warning("pipeline reports no denoising steps: progress moves once per output")
    return {}


def _call_kwargs(
    pipe: Any,
    accepts: Mapping[str, inspect.Parameter],
    spec: GeneratorSpec,
    params: ResolvedParams,
    init_image: Image.Image | None,
) -> dict[str, Any]:
    """Return the task's arguments under the names this pipeline class uses."""
    call: dict[str, Any] = {
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt,
        "num_inference_steps": params.steps,
        "guidance_scale": params.guidance_scale,
        "output_type": "np",
    }
    if spec.task in AUDIO_TASKS:
        # Stable Audio takes a start and end time; AudioLDM (1 and 2) and MusicLDM take a length.
        length_arg = "audio_end_in_s" if "audio_end_in_s" in accepts else "audio_length_in_s"
        call[length_arg] = params.duration_s
        if "num_waveforms_per_prompt" in accepts:
            call["num_waveforms_per_prompt"] = 1  # more would make AudioLDM rank them with CLAP (needs librosa)
    else:
        call.update(height=params.height, width=params.width, num_frames=params.num_frames)
        window = _sequence_window(pipe, accepts)
        if window is not None:
            call["max_sequence_length"] = window
    if init_image is not None:
        call["image"] = init_image
    return call


def _check(spec: GeneratorSpec, params: ResolvedParams, init_image: Image.Image | None) -> None:
    if params.generator != spec.name:
        raise ValueError(f"params were validated for {params.generator!r}, not {spec.name!r}")
    if spec.task not in MEDIA_TASKS:
        raise ValueError(f"run_media_generation handles audio and video generators; {spec.name!r} is {spec.task}")
    if (spec.task in INIT_IMAGE_TASKS) != (init_image is not None):
        raise ValueError(f"{spec.name!r} is {spec.task}: init_image must be given exactly for image-to-video")
    if spec.task in AUDIO_TASKS and params.duration_s is None:
        raise ValueError("audio generation needs duration_s")
    if spec.task in VIDEO_TASKS and None in (params.width, params.height, params.num_frames, params.fps):
        raise ValueError("video generation needs width, height, num_frames and fps")


def run_media_generation(
    spec: GeneratorSpec,
    params: ResolvedParams,
    data_dir: Path,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    *,
    init_image: Image.Image | None = None,
    device: str = "auto",
    offload: bool = False,
) -> list[GeneratedMedia]:
    """Return ``params.n`` encoded audio or video outputs generated with ``spec``, one pipeline call per seed.

    Audio comes back as ``params.output_format`` (WAV, FLAC or MP3) at ``params.sample_rate`` (the model's own rate
    when None), exactly ``duration_s`` long; video as H.264 MP4 of ``num_frames`` frames at ``fps``.
    ``on_progress(done, total)`` is called after every denoising step, counting steps over all outputs;
    ``should_cancel()`` is checked after every step and before each output, and True raises GenerationCanceled.
    Each output has its own seeded CPU generator, so any one seed reruns alone with n=1 to the same result.
    """
    _check(spec, params, init_image)

    import diffusers
    import torch
    from PIL.Image import Resampling

    if init_image is not None and params.width is not None and params.height is not None:
        # The video takes the init image's framing, so the validated size is enforced by resizing it.
        init_image = init_image.convert("RGB").resize((params.width, params.height), Resampling.LANCZOS)

    loaded = load_cached(spec, data_dir, device, offload)
    outputs: list[GeneratedMedia] = []
    with loaded.lock:
        pipe = loaded.pipe
        vae = getattr(pipe, "vae", None)
        if (
            spec.task in VIDEO_TASKS
            and loaded.device.startswith("cuda")
            and vae is not None
            and hasattr(vae, "enable_tiling")
        ):
            # Decoding dozens of 720p frames at once needs tens of GB; tiles keep it within a consumer GPU.
            vae.enable_tiling()
        accepts = inspect.signature(pipe.__call__).parameters
        truncated = _prompt_truncated(pipe, params.prompt, _text_window(pipe, accepts))
        if truncated:
            logger.warning("generator %s: prompt is longer than the text encoder's window and was truncated", spec.name)
        provenance: dict[str, Any] = {
            "generator": spec.name,
            "task": spec.task,
            "model": spec.model,
            "pipeline_class": spec.pipeline_class,
            "prompt": params.prompt,
            "prompt_truncated": truncated,
            "negative_prompt": params.negative_prompt,
            "steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "scheduler": params.scheduler,
            "scheduler_class": type(pipe.scheduler).__name__,
            "init_image": params.init_image,
            "n": params.n,
            "format": params.output_format,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "diffusers_version": diffusers.__version__,
        }
        encode: Callable[[Any], tuple[bytes, dict[str, Any]]]
        if spec.task in AUDIO_TASKS:
            native = _native_sample_rate(pipe)
            encode = _audio_encoder(params, native)
        else:
            encode = _video_encoder(params)
        for index, seed in enumerate(params.seeds):
            if should_cancel is not None and should_cancel():
                raise GenerationCanceled(f"canceled before output {index + 1}/{params.n}")
            call = _call_kwargs(pipe, accepts, spec, params, init_image)
            # A CPU generator gives the same starting noise on any device (diffusers moves it over).
            call["generator"] = torch.Generator("cpu").manual_seed(seed)
            call.update(_progress_kwargs(accepts, index, params.n, params.steps, on_progress, should_cancel))
            try:
                result = pipe(**call)
            except GenerationCanceled:
                # A call cut short skips the pipeline's own end-of-call cleanup (offload hooks, cached state).
                pipe.maybe_free_model_hooks()
                raise
            raw = result.audios[0] if spec.task in AUDIO_TASKS else result.frames[0]
            data, described = encode(raw)
            outputs.append(
                GeneratedMedia(
                    data=data,
                    mime=described.pop("mime"),
                    suffix=f".{params.output_format}",
                    seed=seed,
                    params={**provenance, **described, "seed": seed, "index": index},
                )
            )
    return outputs


def _numpy(raw: Any) -> np.ndarray:
    # output_type="np" gives arrays, but a few pipelines hand back tensors for audio; fp16/bf16 become float32.
    if hasattr(raw, "detach"):
        raw = raw.detach().float().cpu().numpy()
    return np.asarray(raw, dtype=np.float32)


def _audio_encoder(params: ResolvedParams, native_rate: int) -> Callable[[Any], tuple[bytes, dict[str, Any]]]:
    rate = params.sample_rate or native_rate
    duration = float(params.duration_s or 0.0)

    def encode(raw: Any) -> tuple[bytes, dict[str, Any]]:
        audio = fit_length(resample(_numpy(raw), native_rate, rate), round(duration * rate))
        data = encode_audio(audio, rate, params.output_format)
        described = {
            "mime": AUDIO_CODECS[params.output_format][2],
            "duration_s": duration,
            "sample_rate": rate,
            "native_sample_rate": native_rate,
            "channels": int(audio.shape[0]),
        }
        return data, described

    return encode


def _video_encoder(params: ResolvedParams) -> Callable[[Any], tuple[bytes, dict[str, Any]]]:
    fps = int(params.fps or 1)

    def encode(raw: Any) -> tuple[bytes, dict[str, Any]]:
        frames = _numpy(raw)
        data = encode_mp4(frames, fps)
        described = {
            "mime": VIDEO_MIME,
            "width": int(frames.shape[2]),
            "height": int(frames.shape[1]),
            "num_frames": int(frames.shape[0]),
            "fps": fps,
            "duration_s": round(frames.shape[0] / fps, 6),
            "codec": "h264",
        }
        return data, described

    return encode
