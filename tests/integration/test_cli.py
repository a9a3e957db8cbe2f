"""The admin CLI end to end in subprocesses: ingest, search --json, model changes and reindex, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from tests.conftest import env_for
from tests.media_images import write_images
from tests.result_shape import RESULT_KEYS

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    settings: Settings, *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``sensorium ARGS`` in a fresh process with these settings."""
    env = env_for(settings)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_ingest_then_search_json_shape(settings: Settings, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "lib", 6)
    (tmp_path / "lib" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run_cli(settings, "ingest", "lib", "--collection", "shots", "--tag", "demo", cwd=tmp_path)
    assert result.returncode == 1  # one file failed: the exit code says so
    assert "indexed 6, skipped 0, failed 1" in result.stdout
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr

    result = run_cli(settings, "search", "--image", str(paths[1]), "--json", "-k", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert len(results) == 3
    top = results[0]
    assert set(top) == RESULT_KEYS
    assert set(top["segment"]) == {"id", "kind", "t_start", "t_end", "text", "thumbnail_url"}
    assert top["name"] == paths[1].name and top["uri"] == str(paths[1].resolve()) and top["score"] > 0.99

    like = run_cli(
        settings, "search", "--like", top["asset_id"], "--collection", "shots", "--tag", "demo", "--json", cwd=tmp_path
    )
    assert like.returncode == 0 and len(json.loads(like.stdout)["results"]) == 5
    text = run_cli(settings, "search", "a cat", "--kind", "image", "--offset", "2", cwd=tmp_path)
    assert text.returncode == 0 and "fused" in text.stdout and "cosine" in text.stdout
    bad = run_cli(settings, "search", "a cat", "--kind", "hologram", cwd=tmp_path)
    assert bad.returncode == 2 and "'hologram' is not one of" in " ".join(bad.stderr.split())


def test_model_change_is_refused_until_reembed(settings: Settings, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "lib", 4)
    assert run_cli(settings, "ingest", "lib", cwd=tmp_path).returncode == 0
    other_model = {"SENSORIUM_ENCODER__SEED": "7"}
    refused = run_cli(settings, "search", "anything", cwd=tmp_path, extra_env=other_model)
    assert refused.returncode == 2
    assert "sensorium reindex --reembed" in refused.stderr and "Traceback" not in refused.stderr
    refused_ingest = run_cli(settings, "ingest", "lib", cwd=tmp_path, extra_env=other_model)
    assert refused_ingest.returncode == 2 and "--reembed" in refused_ingest.stderr

    fixed = run_cli(settings, "reindex", "--reembed", cwd=tmp_path, extra_env=other_model)
    assert fixed.returncode == 0, fixed.stderr
    assert "re-embedded 4 assets" in fixed.stdout
    found = run_cli(settings, "search", "--image", str(paths[2]), "--json", cwd=tmp_path, extra_env=other_model)
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["results"][0]
    assert top["name"] == paths[2].name and top["score"] > 0.99
    # the original model is now the one refused
    assert run_cli(settings, "search", "anything", cwd=tmp_path).returncode == 2


def test_reindex_rebuilds_snapshot(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 3)
    assert run_cli(settings, "ingest", "lib", cwd=tmp_path).returncode == 0
    snapshot = settings.data_dir / "index" / "vectors.snapshot"
    snapshot.write_bytes(b"corrupted")
    result = run_cli(settings, "reindex", cwd=tmp_path)
    assert result.returncode == 0 and "index rebuilt: 3 vectors" in result.stdout
    assert snapshot.read_bytes().startswith(b"SNSRIDX1")


def test_demo_runs_offline_with_banner(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    env_overrides = {
        "SENSORIUM_ENCODER__MODEL": "ViT-B-32",
        "SENSORIUM_ENCODER__PRETRAINED": "laion2b_s34b_b79k",
        "HF_HUB_OFFLINE": "1",
    }
    result = run_cli(settings, "demo", cwd=tmp_path, extra_env=env_overrides)
    assert result.returncode == 0, result.stderr
    assert "OFFLINE" in result.stdout and "random weights" in result.stdout
    assert "Ingested: 24 indexed" in result.stdout and "24 skipped" in result.stdout
    assert "green-square.png" in result.stdout and "1.000" in result.stdout
    hint = result.stdout.rstrip().splitlines()[-1].strip()  # the closing hint works as printed
    assert hint.endswith("sensorium search 'a yellow triangle'")
    shell_env = {k: v for k, v in env_for(settings).items() if not k.startswith("SENSORIUM_")}
    shell_env.update({"SENSORIUM_ENCODER__MODEL": "ViT-B-32", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    command = hint.replace("sensorium search", f"{sys.executable} -m api.cli search")
    tried = subprocess.run(command, shell=True, cwd=tmp_path, env=shell_env, capture_output=True, text=True)
    assert tried.returncode == 0, tried.stderr
    assert "yellow-triangle.png" in tried.stdout


def test_distributed_ingest_in_embedded_mode_runs_its_chunks_here(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 7)
    (tmp_path / "lib" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    args = ("ingest", "lib", "--distributed", "--chunk-size", "3", "--json")
    result = run_cli(settings, *args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # one file failed: the exit code says so, as for plain ingest
    job = json.loads(result.stdout)
    assert (job["status"], job["kind"], job["progress"]) == ("succeeded", "ingest", 1.0)
    summary = job["result"]
    assert (summary["indexed"], summary["failed"], summary["chunks"]) == (7, 1, 3)
    assert summary["failures"][0]["path"].endswith("broken.png") and "asset_ids" not in summary

    write_images(tmp_path / "elsewhere", 2, start_seed=50)
    outside = run_cli(settings, "ingest", str(tmp_path / "elsewhere"), "--distributed", "--json", cwd=tmp_path / "lib")
    assert outside.returncode == 0 and json.loads(outside.stdout)["result"]["indexed"] == 2  # as the user may read

    again = run_cli(settings, *args, cwd=tmp_path)
    assert json.loads(again.stdout)["result"]["skipped"] == 7
