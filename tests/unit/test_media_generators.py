"""Audio and video generators: registry entries, per-task validation, tiny pipelines, runs, encoders."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generators import registry
from generators.media_encode import encode_audio, encode_mp4
from generators.media_pipelines import _call_kwargs, _progress_kwargs, run_media_generation
from generators.params import InvalidGenerationParams, ResolvedParams, parse_request, resolve_generator, validate_for
from generators.pipelines import GenerationCanceled, load_pipeline
from generators.registry import (
    AUDIO_TASKS,
    MEDIA_TASKS,
    GeneratorDefaults,
    GeneratorSpec,
    GeneratorUnavailable,
    default_generator,
    get_generator,
    list_generators,
    register,
)
from generators.tiny_media import (
    MANIFEST,
    TINY_MEDIA_BUILDERS,
    build_tiny,
    byte_level_tokenizer,
    is_complete,
    t5_tokenizer,
    tiny_folder_name,
)
from tests.media_generation_helpers import decode_audio, decode_video, one_torch_thread

AUDIO = "tiny-random-audio"
AUDIOLDM2 = "tiny-random-audioldm2"
VIDEO = "tiny-random-video"
COGVIDEOX = "tiny-random-cogvideox"
IMAGE_TO_VIDEO = "tiny-random-image-to-video"


# diffusers' own deprecations: Oobleck (Stable Audio's VAE) uses torch's old weight_norm, and AudioLDM 2 passes GPT-2
# past_key_values; not ours to change.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per module, so each tiny pipeline is built and loaded once."""
    return tmp_path_factory.mktemp("media-generators-data")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def resolve(generator: str, **fields: Any) -> ResolvedParams:
    request = parse_request({"generator": generator, "prompt": "thunder rolling over hills", **fields})
    return validate_for(request, resolve_generator(request))


# --- registry -----------------------------------------------------------------------------------------------------


def test_media_generators_are_registered_with_real_models_and_classes() -> None:
    import diffusers

    expected = {
        "audioldm2": ("text-to-audio", "cvssp/audioldm2", "AudioLDM2Pipeline"),
        "stable-audio-open": ("text-to-audio", "stabilityai/stable-audio-open-1.0", "StableAudioPipeline"),
        "cogvideox-2b": ("text-to-video", "THUDM/CogVideoX-2b", "CogVideoXPipeline"),
        "text-to-video-ms": ("text-to-video", "ali-vilab/text-to-video-ms-1.7b", "TextToVideoSDPipeline"),
        "cogvideox-5b-i2v": ("image-to-video", "THUDM/CogVideoX-5b-I2V", "CogVideoXImageToVideoPipeline"),
    }
    for name, (task, model, pipeline_class) in expected.items():
        spec = get_generator(name)
        assert (spec.task, spec.model, spec.pipeline_class) == (task, model, pipeline_class)
        assert hasattr(diffusers, spec.pipeline_class)
    for spec in list_generators():
        if spec.task in MEDIA_TASKS:
            assert hasattr(diffusers, spec.pipeline_class), spec.name
    assert {s.name for s in list_generators("text-to-audio") if s.is_random} == {AUDIO, AUDIOLDM2}
    assert {s.name for s in list_generators("text-to-video") if s.is_random} == {VIDEO, COGVIDEOX}
    assert get_generator("audioldm2").defaults.sample_rate == 16_000
    assert get_generator("stable-audio-open").limits.max_duration_s <= 47.55  # the model's latent length


@pytest.mark.parametrize(
    ("task", "name"),
    [("text-to-audio", "audioldm2"), ("text-to-video", "cogvideox-2b"), ("image-to-video", "cogvideox-5b-i2v")],
)
def test_default_generator_for_media_tasks_is_real(task: registry.Task, name: str) -> None:
    assert default_generator(task).name == name
    assert resolve_generator(parse_request({"prompt": "x", "task": task})).name == name


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "text-to-audio", "defaults": {}}, "duration_s is required"),
        ({"task": "text-to-image", "defaults": {"duration_s": 2.0}}, "only allowed there"),
        ({"task": "text-to-video", "defaults": {"num_frames": 16}}, "fps are required"),
        (
            {"task": "text-to-video", "defaults": {"num_frames": 10, "fps": 8}, "limits": {"frames_step": 4}},
            "frames_step",
        ),
        (
            {"task": "text-to-audio", "defaults": {"duration_s": 60.0}, "limits": {"max_duration_s": 30}},
            "max_duration_s",
        ),
        ({"task": "text-to-image", "defaults": {"width": 520}, "limits": {"size_multiple": 16}}, "size_multiple"),
    ],
)
def test_specs_with_inconsistent_media_defaults_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorSpec.model_validate({"name": "x", "pipeline_class": "P", "model": "org/x", **fields})


@pytest.mark.parametrize("name", [s.name for s in list_generators() if s.task in MEDIA_TASKS])
def test_every_media_pipeline_accepts_the_call_it_gets(name: str) -> None:
    """The arguments built for each registered class exist in its __call__ (checked without weights)."""
    import diffusers

    spec = get_generator(name)
    init = "asset-1" if spec.task == "image-to-video" else None
    params = resolve(name, init_image=init) if init else resolve(name)
    accepts = inspect.signature(getattr(diffusers, spec.pipeline_class).__call__).parameters
    pipe = SimpleNamespace(transformer=SimpleNamespace(config=SimpleNamespace(max_text_seq_length=226)))
    image = Image.new("RGB", (8, 8)) if init else None
    call = {
        **_call_kwargs(pipe, accepts, spec, params, image),
        **_progress_kwargs(accepts, 0, 1, params.steps, None, None),
    }
    assert set(call) <= set(accepts), set(call) - set(accepts)
    assert ("callback_on_step_end" in call) or ("callback" in call)
    length_args = {"audio_end_in_s", "audio_length_in_s"} & set(call)
    assert bool(length_args) == (spec.task in AUDIO_TASKS)


# --- parameter validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generator", "fields", "field"),
    [
        (AUDIO, {"duration_s": 2.5}, "duration_s"),
        (AUDIO, {"duration_s": 0}, "duration_s"),
        (AUDIO, {"duration_s": 601}, "duration_s"),
        (AUDIO, {"width": 64}, "width"),
        (AUDIO, {"num_frames": 8}, "num_frames"),
        (AUDIO, {"fps": 8}, "fps"),
        (AUDIO, {"sample_rate": 12345}, "sample_rate"),
        (AUDIO, {"output_format": "mp4"}, "output_format"),
        (AUDIO, {"scheduler": "ddim"}, "scheduler"),
        (AUDIO, {"steps": 51}, "steps"),
        (AUDIO, {"n": 5}, "n"),
        (AUDIO, {"guidance_scale": 1.0, "negative_prompt": "hiss"}, "negative_prompt"),
        (AUDIO, {"init_image": "asset-1"}, "init_image"),
        (AUDIO, {"strength": 0.5}, "strength"),
        (AUDIO, {"task": "text-to-video"}, "task"),
        (VIDEO, {"num_frames": 34}, "num_frames"),
        (VIDEO, {"duration_s": 5.0}, "duration_s"),
        (VIDEO, {"duration_s": 1.0, "num_frames": 8}, "duration_s"),
        (VIDEO, {"fps": 61}, "fps"),
        (VIDEO, {"fps": 0}, "fps"),
        (VIDEO, {"width": 256, "height": 256}, "width"),
        (VIDEO, {"sample_rate": 16000}, "sample_rate"),
        (VIDEO, {"output_format": "gif"}, "output_format"),
        (COGVIDEOX, {"num_frames": 10}, "num_frames"),
        (COGVIDEOX, {"width": 88}, "width"),
        (IMAGE_TO_VIDEO, {}, "init_image"),
        (IMAGE_TO_VIDEO, {"init_image": "a", "width": 64, "height": 96}, "width"),
        ("tiny-random", {"duration_s": 2.0}, "duration_s"),
        ("tiny-random", {"output_format": "wav"}, "output_format"),
    ],
)
def test_invalid_media_params_name_the_field(generator: str, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidGenerationParams) as info:
        resolve(generator, **fields)
    assert field in [f for f, _ in info.value.errors]
    assert info.value.reason


def test_media_defaults_and_duration_to_frames() -> None:
    audio = resolve(AUDIO, seed=1)
    assert (audio.duration_s, audio.sample_rate, audio.output_format) == (1.0, 16_000, "wav")
    assert (audio.width, audio.height, audio.num_frames, audio.fps) == (None, None, None, None)
    video = resolve(VIDEO, duration_s=2.0, fps=12)
    assert (video.num_frames, video.fps, video.width, video.height, video.output_format) == (24, 12, 64, 64, "mp4")
    # CogVideoX makes 1 + 4k frames: 1 s at 8 fps rounds to 9 frames, 2.2 s to 17.
    assert resolve(COGVIDEOX, duration_s=1.0).num_frames == 9
    assert resolve(COGVIDEOX, duration_s=2.2).num_frames == 17
    assert resolve(AUDIO, output_format="FLAC").output_format == "flac"
    assert ResolvedParams.model_validate_json(video.model_dump_json()) == video
    image = resolve("tiny-random")
    assert (image.output_format, image.duration_s, image.num_frames) == ("png", None, None)


# --- runs ---------------------------------------------------------------------------------------------------------


def test_audio_has_requested_duration_rate_and_format_and_is_reproducible(data_dir: Path) -> None:
    spec = get_generator(AUDIO)
    steps: list[tuple[int, int]] = []
    (wav,) = run_media_generation(
        spec, resolve(AUDIO, duration_s=1.5, seed=4), data_dir, on_progress=lambda d, t: steps.append((d, t))
    )
    assert steps == [(1, 2), (2, 2)]
    assert (wav.mime, wav.suffix, wav.seed) == ("audio/wav", ".wav", 4)
    assert decode_audio(wav.data) == (16_000, 1, 24_000)
    assert (wav.params["duration_s"], wav.params["sample_rate"], wav.params["native_sample_rate"]) == (
        1.5,
        16_000,
        16_000,
    )
    assert wav.params["scheduler_class"] == "EDMDPMSolverMultistepScheduler" and wav.params["prompt_truncated"] is False

    again = run_media_generation(spec, resolve(AUDIO, duration_s=1.5, seed=4), data_dir)[0]
    other = run_media_generation(spec, resolve(AUDIO, duration_s=1.5, seed=5), data_dir)[0]
    assert again.data == wav.data and other.data != wav.data

    (flac,) = run_media_generation(spec, resolve(AUDIO, seed=4, sample_rate=44_100, output_format="flac"), data_dir)
    assert (flac.mime, flac.suffix) == ("audio/flac", ".flac")
    assert decode_audio(flac.data) == (44_100, 1, 44_100)
    (mp3,) = run_media_generation(spec, resolve(AUDIO, seed=4, sample_rate=22_050, output_format="mp3"), data_dir)
    rate, channels, samples = decode_audio(mp3.data)
    assert (mp3.mime, rate, channels) == ("audio/mpeg", 22_050, 1)
    assert samples == pytest.approx(22_050, abs=1152)  # MP3 pads to whole frames unless the decoder trims it


def test_audioldm2_runs_with_its_gpt2_loaded_for_generation(data_dir: Path) -> None:
    """AudioLDM 2 checkpoints store GPT2Model; it loads as GPT2LMHeadModel with the same weights, so prompts work."""
    from safetensors.torch import load_file

    steps: list[tuple[int, int]] = []
    (wav,) = run_media_generation(
        get_generator(AUDIOLDM2),
        resolve(AUDIOLDM2, duration_s=1.3, seed=2, negative_prompt="hiss"),
        data_dir,
        on_progress=lambda d, t: steps.append((d, t)),
    )
    assert steps == [(1, 2), (2, 2)]
    assert decode_audio(wav.data) == (16_000, 1, 20_800)
    pipe = load_pipeline(get_generator(AUDIOLDM2), data_dir, device="cpu")
    assert type(pipe.language_model).__name__ == "GPT2LMHeadModel"
    folder = data_dir / "models" / tiny_folder_name("AudioLDM2Pipeline")
    assert json.loads((folder / "model_index.json").read_text())["language_model"] == ["transformers", "GPT2Model"]
    stored = load_file(folder / "language_model" / "model.safetensors")
    assert np.array_equal(stored["wte.weight"].numpy(), pipe.language_model.transformer.wte.weight.detach().numpy())


def test_video_has_requested_frames_fps_and_size(data_dir: Path) -> None:
    spec = get_generator(VIDEO)
    steps: list[tuple[int, int]] = []
    outputs = run_media_generation(
        spec,
        resolve(VIDEO, n=2, num_frames=6, fps=12, width=64, height=48, seed=9, negative_prompt="blur"),
        data_dir,
        on_progress=lambda d, t: steps.append((d, t)),
    )
    assert steps == [(i, 4) for i in range(1, 5)]
    assert [o.seed for o in outputs] == [9, 10]
    for output in outputs:
        frames, fps, duration, codec, pix_fmt = decode_video(output.data)
        assert (len(frames), fps, duration, codec, pix_fmt) == (6, 12.0, 0.5, "h264", "yuv420p")
        assert frames[0].shape == (48, 64, 3)
        assert (output.mime, output.suffix, output.params["num_frames"], output.params["fps"]) == (
            "video/mp4",
            ".mp4",
            6,
            12,
        )
        assert output.params["negative_prompt"] == "blur" and output.params["duration_s"] == 0.5
    assert outputs[0].data != outputs[1].data


def test_cancel_stops_a_video_run_and_the_pipeline_still_works(data_dir: Path) -> None:
    calls: list[int] = []
    with pytest.raises(GenerationCanceled):
        run_media_generation(
            get_generator(VIDEO),
            resolve(VIDEO, n=2, steps=4, seed=1),
            data_dir,
            on_progress=lambda done, total: calls.append(done),
            should_cancel=lambda: len(calls) >= 1,
        )
    assert calls == [1]
    assert len(run_media_generation(get_generator(VIDEO), resolve(VIDEO, seed=1), data_dir)) == 1


def test_cogvideox_text_and_image_to_video(data_dir: Path) -> None:
    (clip,) = run_media_generation(get_generator(COGVIDEOX), resolve(COGVIDEOX, duration_s=1.0, seed=2), data_dir)
    frames, fps, duration, _, _ = decode_video(clip.data)
    assert (len(frames), fps, duration, frames[0].shape) == (9, 8.0, 1.125, (64, 96, 3))

    spec = get_generator(IMAGE_TO_VIDEO)
    init = Image.new("RGB", (120, 80), (220, 40, 40))
    (animated,) = run_media_generation(
        spec, resolve(IMAGE_TO_VIDEO, init_image="asset-7", seed=2), data_dir, init_image=init
    )
    assert len(decode_video(animated.data)[0]) == 9 and animated.params["init_image"] == "asset-7"
    with pytest.raises(ValueError, match="init_image"):
        run_media_generation(spec, resolve(IMAGE_TO_VIDEO, init_image="asset-7"), data_dir)


def test_long_prompt_is_truncated_and_recorded(data_dir: Path) -> None:
    (clip,) = run_media_generation(get_generator(COGVIDEOX), resolve(COGVIDEOX, prompt="rain " * 40, seed=1), data_dir)
    assert clip.params["prompt_truncated"] is True


def test_image_generators_are_refused(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="audio and video"):
        run_media_generation(get_generator("tiny-random"), resolve("tiny-random"), data_dir)


@pytest.mark.skipif(importlib.util.find_spec("torchsde") is not None, reason="torchsde is installed here")
def test_missing_optional_package_is_unavailable_with_the_install_hint(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stable Audio Open's own scheduler needs torchsde: loading says so instead of raising ImportError."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    model = tmp_path / "stable-audio-open"
    shutil.copytree(build_tiny("StableAudioPipeline", tmp_path / "built"), model)
    config = model / "scheduler" / "scheduler_config.json"
    config.write_text(
        json.dumps({**json.loads(config.read_text()), "_class_name": "CosineDPMSolverMultistepScheduler"})
    )
    index = model / "model_index.json"
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "scheduler": ["diffusers", "CosineDPMSolverMultistepScheduler"]}))
    spec = register(
        GeneratorSpec(
            name="sao-local",
            task="text-to-audio",
            pipeline_class="StableAudioPipeline",
            model=str(model),
            defaults=GeneratorDefaults(duration_s=1.0),
        )
    )
    with pytest.raises(GeneratorUnavailable, match="pip install torchsde"):
        load_pipeline(spec, data_dir, device="cpu")


# --- tiny builds and encoders -------------------------------------------------------------------------------------


def _digest(folder: Path) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        for name, tensor in sorted(load_file(path).items()):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
    digest.update((folder / "tokenizer" / "tokenizer.json").read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("pipeline_class", ["StableAudioPipeline", "AudioLDM2Pipeline", "CogVideoXPipeline"])
def test_tiny_media_builds_are_identical_and_complete(pipeline_class: str, tmp_path: Path) -> None:
    import torch

    first = build_tiny(pipeline_class, tmp_path / "a")
    torch.manual_seed(999)
    torch.rand(10)  # a different global RNG state must not change the weights
    second = build_tiny(pipeline_class, tmp_path / "b")
    assert is_complete(first) and _digest(first) == _digest(second)
    manifest = json.loads((first / MANIFEST).read_text())
    assert "model_index.json" in manifest and any(name.endswith(".safetensors") for name in manifest)
    before = (first / "model_index.json").stat().st_mtime_ns
    assert build_tiny(pipeline_class, first) == first
    assert (first / "model_index.json").stat().st_mtime_ns == before


def test_tiny_build_replaces_a_damaged_folder(tmp_path: Path) -> None:
    dest = build_tiny("CogVideoXPipeline", tmp_path / "tiny")
    (dest / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"truncated")
    assert not is_complete(dest)
    assert is_complete(build_tiny("CogVideoXPipeline", dest))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


def test_every_tiny_builder_has_a_registered_generator() -> None:
    tiny_classes = {s.pipeline_class for s in list_generators() if s.is_random and s.task in MEDIA_TASKS}
    assert tiny_classes == set(TINY_MEDIA_BUILDERS)


def test_t5_tokenizer_knows_words_and_spells_the_rest() -> None:
    tokenizer = t5_tokenizer()
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.tokenize("thunder over hills") == ["\u2581thunder", "\u2581over", "\u2581hills"]
    ids = tokenizer("Zebra 42!").input_ids
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Zebra 42!"
    roberta = byte_level_tokenizer()
    ids = roberta("Ünïcode thunder").input_ids
    assert roberta.unk_token_id not in ids and roberta.decode(ids, skip_special_tokens=True) == "Ünïcode thunder"


def test_encoders_handle_stereo_and_odd_sizes_and_refuse_bad_shapes() -> None:
    stereo = np.stack([np.linspace(-1, 1, 8000), np.zeros(8000)]).astype(np.float32)
    assert decode_audio(encode_audio(stereo, 8000, "wav")) == (8000, 2, 8000)
    frames, fps, duration, _, _ = decode_video(encode_mp4(np.random.default_rng(0).random((3, 35, 51, 3)), 3))
    assert (len(frames), frames[0].shape, fps, duration) == (3, (34, 50, 3), 3.0, 1.0)
    with pytest.raises(ValueError, match="channels"):
        encode_audio(np.zeros((3, 100), dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="frames"):
        encode_mp4(np.zeros((4, 4, 3)), 8)
