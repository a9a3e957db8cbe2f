"""Audio and video generation through jobs (embedded mode): playable files, stored and indexed, agent routing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from core.blobs import BlobStore
from core.db.engine import read_session
from core.db.models import Asset, Segment
from core.jobs import job_to_dict, stop_executors, wait
from core.settings import GeneratorSettings, Settings
from generators import registry
from generators.params import InvalidGenerationParams
from generators.service import store_init_image, submit_generation
from index.search import SearchFilters, SearchRequest, search
from tests.jobs_helpers import job_count
from tests.media_generation_helpers import (
    build_tiny_media,
    decode_audio,
    decode_video,
    link_tiny_media,
    one_torch_thread,
)
from tests.media_images import distinct_image

pytestmark = pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build the tiny audio and video pipelines once for the module, and run them on one torch thread."""
    with one_torch_thread():
        yield build_tiny_media(tmp_path_factory.mktemp("models"))


@pytest.fixture
def embedded(settings: Settings, tiny_media: Path) -> Iterator[Settings]:
    """Embedded mode (SQLite and PostgreSQL) with the tiny pipelines in place and Whisper off (outputs are noise)."""
    link_tiny_media(tiny_media, settings.data_dir)
    yield settings.model_copy(update={"whisper": settings.whisper.model_copy(update={"enabled": False})})
    stop_executors()


def _run(request: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], Asset, bytes]:
    """Submit a generation, wait for it, and return (job, its one asset, the asset's file bytes)."""
    job = submit_generation(request, settings=settings)
    data = job_to_dict(wait(job.id, 180, settings))
    assert data["status"] == "succeeded", data["error"]
    assert data["progress"] == 1.0
    (asset_id,) = data["result"]["asset_ids"]
    with read_session(settings) as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.blob_key
    return data, asset, BlobStore(settings.resolved_data_dir()).path(asset.blob_key).read_bytes()


def _segment_kinds(asset_id: str, settings: Settings) -> list[str]:
    with read_session(settings) as session:
        return list(session.scalars(select(Segment.kind).where(Segment.asset_id == asset_id)))


def test_text_to_audio_job_stores_an_indexed_wav_as_requested(embedded: Settings) -> None:
    request = {
        "generator": "tiny-random-audio",
        "prompt": "the sound of thunder rolling over hills",
        "duration_s": 1.5,
        "sample_rate": 22_050,
        "seed": 21,
    }
    job, asset, wav = _run(request, embedded)
    assert decode_audio(wav) == (22_050, 1, round(1.5 * 22_050))
    assert (asset.kind, asset.source, asset.status, asset.name) == (
        "audio",
        "generated",
        "indexed",
        f"the-sound-of-thunder-rolling-over-hills-{job['id'][:8]}-0.wav",
    )
    assert asset.duration == pytest.approx(1.5, abs=0.01)
    assert asset.thumbnail_key  # the first spectrogram is the audio's poster
    meta = asset.meta
    assert (meta["generator"], meta["task"], meta["seed"], meta["job_id"]) == (
        "tiny-random-audio",
        "text-to-audio",
        21,
        job["id"],
    )
    assert (meta["duration_s"], meta["sample_rate"], meta["native_sample_rate"], meta["format"]) == (
        1.5,
        22_050,
        16_000,
        "wav",
    )
    assert "spectrogram" in _segment_kinds(asset.id, embedded)
    by_sound = search(SearchRequest(audio=wav, limit=1), embedded)
    assert by_sound[0].asset_id == asset.id and by_sound[0].segment.kind == "spectrogram"


def test_text_to_video_job_stores_an_mp4_findable_by_its_frame(embedded: Settings) -> None:
    request = {
        "generator": "tiny-random-video",
        "prompt": "a dog chasing a frisbee",
        "num_frames": 12,
        "fps": 8,
        "width": 96,
        "height": 64,
        "seed": 5,
    }
    job, asset, mp4 = _run(request, embedded)
    frames, fps, duration, codec, pix_fmt = decode_video(mp4)
    assert (len(frames), fps, duration, codec, pix_fmt) == (12, 8.0, 1.5, "h264", "yuv420p")
    assert frames[0].shape == (64, 96, 3)
    assert (asset.kind, asset.status, asset.name, asset.width, asset.height) == (
        "video",
        "indexed",
        f"a-dog-chasing-a-frisbee-{job['id'][:8]}-0.mp4",
        96,
        64,
    )
    assert asset.duration == pytest.approx(1.5, abs=0.01)
    assert asset.thumbnail_key  # the poster: the first scene's frame, made by the video ingest path
    assert asset.meta["num_frames"] == 12 and asset.meta["fps"] == 8 and asset.meta["codec"] == "h264"
    assert "frame" in _segment_kinds(asset.id, embedded)

    png = io.BytesIO()
    Image.fromarray(frames[0]).save(png, format="PNG")
    top = search(SearchRequest(image=png.getvalue(), limit=1), embedded)[0]
    assert top.asset_id == asset.id and top.kind == "video" and top.segment.kind == "frame"
    assert top.score is not None and top.score > 0.99
    generated = search(
        SearchRequest(text="a dog chasing a frisbee", filters=SearchFilters(kinds=["video"], sources=["generated"])),
        embedded,
    )
    assert [r.asset_id for r in generated] == [asset.id]


def test_image_to_video_job_animates_an_image_asset(embedded: Settings) -> None:
    png = io.BytesIO()
    distinct_image(3, (120, 80)).save(png, format="PNG")
    init = store_init_image(png.getvalue(), "still.png", embedded)
    job, asset, mp4 = _run(
        {"generator": "tiny-random-image-to-video", "prompt": "the still comes alive", "init_image": init, "seed": 1},
        embedded,
    )
    frames, fps, _, _, _ = decode_video(mp4)
    assert (len(frames), fps, frames[0].shape) == (9, 8.0, (64, 96, 3))
    assert asset.meta["init_image"] == init and job["params"]["init_image"] == init


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"generator": "tiny-random-audio", "duration_s": 30.0}, "duration_s"),
        ({"generator": "tiny-random-audio", "num_frames": 8}, "num_frames"),
        ({"generator": "tiny-random-video", "num_frames": 500}, "num_frames"),
        ({"generator": "tiny-random-video", "fps": 240}, "fps"),
        ({"generator": "tiny-random-cogvideox", "num_frames": 12}, "num_frames"),
        ({"generator": "tiny-random-image-to-video"}, "init_image"),
        ({"task": "text-to-audio", "generator": "tiny-random-video"}, "task"),
    ],
)
def test_invalid_media_requests_create_no_job(embedded: Settings, request_fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidGenerationParams) as info:
        submit_generation({"prompt": "thunder", **request_fields}, settings=embedded)
    assert info.value.field == field
    assert job_count(embedded) == 0


def test_agent_sends_a_sound_request_to_a_text_to_audio_generator(
    embedded: Settings, tiny_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a text-to-audio model on disk (here the tiny one, registered like real weights), the agent uses it."""
    from agent.loop import run_agent

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the generators file registers globally
    generators_file = tmp_path / "generators.toml"
    generators_file.write_text(
        '[[generators]]\nname = "local-audio"\ntask = "text-to-audio"\npipeline_class = "StableAudioPipeline"\n'
        f'model = "{tiny_media / "tiny-random-StableAudioPipeline"}"\n'
        "[generators.defaults]\nsteps = 2\nduration_s = 1.0\n[generators.limits]\nmax_n = 1\nmax_duration_s = 2.0\n"
    )
    settings = embedded.model_copy(update={"generators": GeneratorSettings(config_file=generators_file)})

    response = run_agent("generate the sound of thunder rolling over hills", settings=settings, wait_s=180)
    assert (response["plan"]["route"], response["plan"]["modality"]) == ("generate", "audio")
    (job,) = response["jobs"]
    assert job["kind"] == "generate" and job["status"] == "succeeded", job["error"]
    assert job["params"]["generator"] == "local-audio" and "thunder" in job["params"]["prompt"]
    (asset,) = response["assets"]
    assert asset["kind"] == "audio"
    with read_session(settings) as session:
        stored = session.get(Asset, asset["asset_id"])
        assert stored is not None and stored.meta["task"] == "text-to-audio"
