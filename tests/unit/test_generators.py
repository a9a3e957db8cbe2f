"""Generators: registry, parameter validation, the offline tiny-random pipeline, runs with progress and cancel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generators import registry
from generators.params import (
    InvalidGenerationParams,
    ResolvedParams,
    parse_request,
    resolve_generator,
    validate_for,
)
from generators.pipelines import GenerationCanceled, load_pipeline, run_generation
from generators.registry import (
    GeneratorSpec,
    GeneratorUnavailable,
    UnknownGenerator,
    default_generator,
    get_generator,
    list_generators,
    load_user_generators,
    register,
)
from generators.tiny import build_tiny_pipeline, is_complete

TINY = "tiny-random"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per module, so the tiny pipeline is built and loaded once."""
    return tmp_path_factory.mktemp("generators-data")


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register generators without leaking them into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def resolve(generator: str, **fields: Any) -> ResolvedParams:
    request = parse_request({"generator": generator, "prompt": "a red cube", **fields})
    return validate_for(request, resolve_generator(request))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8)


# --- registry ---------------------------------------------------------------------------------------------------


def test_builtin_generators_are_listed_by_task() -> None:
    names = {spec.name for spec in list_generators()}
    assert {"sd-turbo", "sd15", "sd-turbo-img2img", "sd15-img2img", TINY, "tiny-random-img2img"} <= names
    assert all(spec.task == "image-to-image" for spec in list_generators("image-to-image"))
    turbo = get_generator("sd-turbo")
    assert (turbo.model, turbo.pipeline_class) == ("stabilityai/sd-turbo", "AutoPipelineForText2Image")
    assert (turbo.defaults.steps, turbo.defaults.guidance_scale) == (1, 0.0)


def test_unknown_generator_lists_known_names() -> None:
    with pytest.raises(UnknownGenerator, match="nope.*known:.*sd-turbo.*tiny-random"):
        get_generator("nope")


@pytest.mark.usefixtures("isolated_registry")
def test_default_generator_prefers_real_weights_on_disk_and_never_tiny(tmp_path: Path) -> None:
    for spec in list_generators():
        registry._REGISTRY.pop(spec.name)
    register(GeneratorSpec(name="tiny", task="text-to-image", pipeline_class="StableDiffusionPipeline", model=TINY))
    register(
        GeneratorSpec(
            name="absent", task="text-to-image", pipeline_class="StableDiffusionPipeline", model=str(tmp_path / "none")
        )
    )
    # With no real weights anywhere the first real generator is still chosen: loading it explains what to do.
    assert default_generator().name == "absent"
    local = tmp_path / "local-model"
    local.mkdir()
    (local / "model_index.json").write_text("{}")
    register(
        GeneratorSpec(name="local", task="text-to-image", pipeline_class="StableDiffusionPipeline", model=str(local))
    )
    assert default_generator().name == "local"
    with pytest.raises(UnknownGenerator):
        default_generator("image-to-image")


@pytest.mark.usefixtures("isolated_registry")
def test_load_user_generators_from_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "gens.toml"
    toml_file.write_text(
        '[[generators]]\nname = "sd15"\ntask = "text-to-image"\npipeline_class = "StableDiffusionPipeline"\n'
        'model = "/models/sd15"\n[generators.defaults]\nsteps = 25\n'
    )
    json_file = tmp_path / "gens.json"
    spec = {
        "name": "mine",
        "task": "image-to-image",
        "pipeline_class": "X",
        "model": "org/x",
        "defaults": {"strength": 0.6},
    }
    json_file.write_text(json.dumps([spec]))

    assert [s.name for s in load_user_generators(toml_file)] == ["sd15"]
    assert get_generator("sd15").model == "/models/sd15"  # a file may repoint a built-in at a local folder
    assert get_generator("sd15").defaults.steps == 25
    assert load_user_generators(json_file)[0].defaults.strength == 0.6

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"generators": [{**spec, "name": "ok2"}, {**spec, "name": "bad", "dtype": "int8"}]}))
    with pytest.raises(ValueError, match="generator #1"):
        load_user_generators(bad)
    with pytest.raises(UnknownGenerator):
        get_generator("ok2")  # nothing from a bad file is registered


# --- parameter validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"width": 100}, "width"),
        ({"width": 512, "height": 512}, "width"),
        ({"height": 2048}, "height"),
        ({"steps": 0}, "steps"),
        ({"steps": 10000}, "steps"),
        ({"steps": 51}, "steps"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"n": 9}, "n"),
        ({"scheduler": "warp-drive"}, "scheduler"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"strength": 0.5}, "strength"),
        ({"init_image": "asset-1"}, "init_image"),
        ({"negative_prompt": "blur", "guidance_scale": 1.0}, "negative_prompt"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_params_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidGenerationParams) as info:
        resolve(TINY, **fields)
    assert info.value.field == field
    assert info.value.reason


def test_image_to_image_needs_init_image_and_a_real_step() -> None:
    with pytest.raises(InvalidGenerationParams) as info:
        resolve("tiny-random-img2img")
    assert info.value.field == "init_image"
    with pytest.raises(InvalidGenerationParams) as info:
        resolve("tiny-random-img2img", init_image="a", steps=2, strength=0.4)
    assert info.value.field == "strength"


def test_defaults_and_one_seed_per_output() -> None:
    params = resolve(TINY, n=3, seed=2**32 - 2)
    spec = get_generator(TINY)
    assert (params.width, params.height, params.steps) == (spec.defaults.width, spec.defaults.height, 2)
    assert params.seeds == (2**32 - 2, 2**32 - 1, 0)
    assert params.scheduler == "default"
    random_seeds = {resolve(TINY).seeds[0] for _ in range(5)}
    assert len(random_seeds) > 1
    assert ResolvedParams.model_validate_json(params.model_dump_json()) == params


def test_request_without_generator_gets_a_real_default() -> None:
    request = parse_request({"prompt": "a cat"})
    assert not resolve_generator(request).is_random
    assert resolve_generator(parse_request({"prompt": "a cat", "init_image": "a"})).task == "image-to-image"


# --- running the tiny pipeline ------------------------------------------------------------------------------------


def test_text_to_image_returns_n_images_with_recorded_seeds(data_dir: Path) -> None:
    spec = get_generator(TINY)
    params = resolve(TINY, n=2, width=64, height=64, steps=2, seed=7, negative_prompt="blurry")
    outputs = run_generation(spec, params, data_dir)
    assert [out.seed for out in outputs] == [7, 8]
    assert all(out.image.size == (64, 64) and out.image.mode == "RGB" for out in outputs)
    provenance = outputs[1].params
    assert provenance["generator"] == TINY and provenance["model"] == "tiny-random"
    assert (provenance["seed"], provenance["index"], provenance["steps"]) == (8, 1, 2)
    assert (provenance["negative_prompt"], provenance["scheduler_class"]) == ("blurry", "DDIMScheduler")
    assert provenance["prompt_truncated"] is False


def test_same_seed_same_pixels_and_single_outputs_reproduce_alone(data_dir: Path) -> None:
    spec = get_generator(TINY)
    batch = run_generation(spec, resolve(TINY, n=2, seed=123), data_dir)
    again = run_generation(spec, resolve(TINY, n=2, seed=123), data_dir)
    alone = run_generation(spec, resolve(TINY, n=1, seed=124), data_dir)
    assert np.array_equal(pixels(batch[0].image), pixels(again[0].image))
    assert np.array_equal(pixels(batch[1].image), pixels(alone[0].image))
    assert not np.array_equal(pixels(batch[0].image), pixels(batch[1].image))


def test_scheduler_swap_is_recorded_and_default_comes_back(data_dir: Path) -> None:
    spec = get_generator(TINY)
    swapped = run_generation(spec, resolve(TINY, seed=1, scheduler="euler_a"), data_dir)[0]
    assert swapped.params["scheduler_class"] == "EulerAncestralDiscreteScheduler"
    assert run_generation(spec, resolve(TINY, seed=1), data_dir)[0].params["scheduler_class"] == "DDIMScheduler"


def test_long_prompt_is_truncated_and_recorded(data_dir: Path) -> None:
    output = run_generation(get_generator(TINY), resolve(TINY, prompt="cat " * 100, seed=1), data_dir)[0]
    assert output.params["prompt_truncated"] is True


def test_image_to_image_runs_from_an_init_image(data_dir: Path) -> None:
    spec = get_generator("tiny-random-img2img")
    params = resolve(spec.name, init_image="asset-9", strength=0.5, steps=4, seed=3, width=64, height=64)
    init = Image.new("RGB", (80, 48), (200, 30, 30))
    steps: list[tuple[int, int]] = []
    outputs = run_generation(spec, params, data_dir, init_image=init, on_progress=lambda d, t: steps.append((d, t)))
    assert outputs[0].image.size == (64, 64)
    assert (outputs[0].params["strength"], outputs[0].params["init_image"]) == (0.5, "asset-9")
    assert steps == [(1, 2), (2, 2)]  # int(4 * 0.5) denoising steps
    with pytest.raises(ValueError, match="init_image"):
        run_generation(spec, params, data_dir)


def test_progress_is_reported_once_per_step_over_all_outputs(data_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    run_generation(
        get_generator(TINY),
        resolve(TINY, n=2, steps=3, seed=5),
        data_dir,
        on_progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(i, 6) for i in range(1, 7)]


def test_cancel_after_first_step_stops_the_run(data_dir: Path) -> None:
    calls: list[int] = []
    with pytest.raises(GenerationCanceled):
        run_generation(
            get_generator(TINY),
            resolve(TINY, n=2, steps=5, seed=5),
            data_dir,
            on_progress=lambda done, total: calls.append(done),
            should_cancel=lambda: len(calls) >= 1,
        )
    assert calls == [1]
    # The cached pipeline is still usable after a canceled call.
    assert len(run_generation(get_generator(TINY), resolve(TINY, seed=5), data_dir)) == 1


# --- unavailable weights ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("isolated_registry")
# diffusers' offline lookup passes a deprecated argument to huggingface_hub; not ours to fix.
@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning")
def test_missing_hub_weights_fail_fast_with_instructions(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = register(
        GeneratorSpec(
            name="absent-hub",
            task="text-to-image",
            pipeline_class="AutoPipelineForText2Image",
            model="sensorium-test/not-downloaded",
        )
    )
    with pytest.raises(GeneratorUnavailable, match="hf download sensorium-test/not-downloaded") as info:
        load_pipeline(spec, data_dir, device="cpu")
    assert "HF_HOME" in str(info.value)


def test_missing_local_folder_and_unknown_class_are_unavailable(data_dir: Path, tmp_path: Path) -> None:
    missing = GeneratorSpec(
        name="x", task="text-to-image", pipeline_class="StableDiffusionPipeline", model=str(tmp_path / "nothing")
    )
    with pytest.raises(GeneratorUnavailable, match="model_index.json"):
        load_pipeline(missing, data_dir, device="cpu")
    bogus = GeneratorSpec(name="y", task="text-to-image", pipeline_class="NoSuchPipeline", model=TINY)
    with pytest.raises(GeneratorUnavailable, match="NoSuchPipeline"):
        load_pipeline(bogus, data_dir, device="cpu")


# --- building the tiny pipeline -----------------------------------------------------------------------------------


def _weights_digest(folder: Path) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        for name, tensor in sorted(load_file(path).items()):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def built_twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two builds in different folders, with the global RNG disturbed in between (as in a fresh process)."""
    import torch

    first = build_tiny_pipeline(tmp_path_factory.mktemp("tiny-a") / "tiny")
    torch.manual_seed(12345)
    torch.rand(100)
    yield first, build_tiny_pipeline(tmp_path_factory.mktemp("tiny-b") / "tiny")


def test_tiny_build_is_idempotent(built_twice: tuple[Path, Path]) -> None:
    first, _ = built_twice
    weights = first / "unet" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_tiny_pipeline(first) == first
    assert weights.stat().st_mtime_ns == before
    assert is_complete(first)
    assert [p.name for p in first.parent.iterdir()] == ["tiny"]  # no staging folders left behind


def test_tiny_builds_have_identical_weights(built_twice: tuple[Path, Path]) -> None:
    first, second = built_twice
    assert _weights_digest(first) == _weights_digest(second)


def test_tiny_build_replaces_an_incomplete_folder(tmp_path: Path) -> None:
    dest = tmp_path / "tiny"
    dest.mkdir()
    (dest / "model_index.json").write_text("{}")
    assert is_complete(build_tiny_pipeline(dest))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]
