"""The generation and job CLI in subprocesses: the offline tiny-random run in a fresh data dir, listing generators
and jobs, and bad input that prints a clear error and creates no job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from tests.conftest import TINY_ENV

REPO = Path(__file__).resolve().parents[2]


def _env(data_dir: Path, tiny_encoder: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    if tiny_encoder:
        env.update(TINY_ENV)
    env.update({"SENSORIUM_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    env["OMP_NUM_THREADS"] = "1"  # two shared cores: spinning OpenMP threads slow torch many times over
    return env


def _cli(
    data_dir: Path, *args: str, tiny_encoder: bool = True, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=data_dir.parent,
        env={**_env(data_dir, tiny_encoder), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_generate_tiny_random_offline_in_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    # Exactly the documented command, with no SENSORIUM_* settings at all: default encoder, no weights offline.
    command = ("generate", "a red cube", "--generator", "tiny-random", "--wait", "--json")
    refused = _cli(data_dir, *command, tiny_encoder=False)
    assert refused.returncode == 2 and "SENSORIUM_ENCODER__PRETRAINED=none" in refused.stderr
    assert "Traceback" not in refused.stderr
    # The README's offline rule: say PRETRAINED=none and it goes on, saying once that the weights are random.
    result = _cli(data_dir, *command, tiny_encoder=False, extra_env={"SENSORIUM_ENCODER__PRETRAINED": "none"})
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and job["kind"] == "generate" and job["params"]["prompt"] == "a red cube"
    (asset,) = job["assets"]
    assert asset["asset_id"] == job["result"]["asset_ids"][0] and asset["seed"] == job["result"]["seeds"][0]
    assert Path(asset["path"]).is_file() and (asset["width"], asset["height"]) == (64, 64)
    assert result.stderr.count("seeded random weights") == 1 and "Traceback" not in result.stderr
    assert asset["name"].startswith(f"a-red-cube-{job['id'][:8]}-0")

    listed = _cli(data_dir, "jobs", "list", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job["id"]]
    shown = json.loads(_cli(data_dir, "jobs", "show", job["id"], "--json").stdout)
    assert shown["result"] == job["result"] and shown["assets"] == job["assets"]
    canceled = _cli(data_dir, "jobs", "cancel", job["id"], "--json")
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["status"] == "succeeded"  # already ended
    missing = _cli(data_dir, "jobs", "show", "no-such-job")
    assert missing.returncode == 1 and "no job" in missing.stderr


def test_generate_list_and_worker_without_broker(tmp_path: Path) -> None:
    listed = _cli(tmp_path / "data", "generate", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    generators = {g["name"]: g for g in json.loads(listed.stdout)["generators"]}
    tiny = generators["tiny-random"]
    assert (tiny["task"], tiny["model"], tiny["random_weights"], tiny["weights_available"]) == (
        "text-to-image",
        "tiny-random",
        True,
        True,
    )
    assert tiny["limits"]["max_n"] >= 1 and generators["sd15-img2img"]["task"] == "image-to-image"
    assert {"name", "task", "model", "defaults", "limits"} <= set(generators["sd-turbo"])
    worker = _cli(tmp_path / "data", "worker")
    assert worker.returncode == 2 and "SENSORIUM_BROKER_URL" in worker.stderr


def test_bad_input_prints_a_clear_error_and_creates_no_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    cases = [
        # Every field problem of one request is reported at once.
        (["generate", "", "--size", "100x100", "--steps", "0", "--n", "1000"], ["prompt", "width", "steps", "n: "]),
        (["generate", "x", "-g", "tiny-random", "--steps", "51", "--scheduler", "warp"], ["max_steps", "scheduler"]),
        (["generate", "x", "--generator", "no-such-generator"], ["unknown generator"]),
        (["generate", "x", "--generator", "tiny-random-img2img", "--init-image", str(corrupt)], ["init_image"]),
        (["generate", "x", "--generator", "tiny-random", "--callback-url", "ftp://example.com/x"], ["http or https"]),
        (["generate", "x", "--size", "big"], ["WIDTHxHEIGHT"]),
    ]
    for args, needles in cases:
        result = _cli(data_dir, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
        assert all(needle in result.stderr for needle in needles), (args, result.stderr)
    settings = Settings(data_dir=data_dir)
    database = data_dir / "sensorium.db"
    if database.exists():
        from tests.jobs_helpers import job_count

        assert job_count(settings) == 0
    blobs = data_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
