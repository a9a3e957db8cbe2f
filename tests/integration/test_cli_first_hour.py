"""The CLI as a new user meets it, in subprocesses: help, no model where none is needed, the offline rule, ingest of
any readable path (never the data dir), and the search table with its paging and empty-library hints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import env_for
from tests.media_images import write_images

REPO = Path(__file__).resolve().parents[2]

# Each command's --help, and a choice list it must name.
HELP_CHOICES = {
    (): "Example:",
    ("ingest",): "Example:",
    ("search",): "vector|text|hybrid",
    ("generate",): "Example:",
    ("agent",): "Example:",
    ("mcp",): "search|generate",
    ("jobs",): "Example:",
    ("jobs", "list"): "queued|running|succeeded|failed|canceled",
    ("jobs", "show"): "JOB_ID",
    ("jobs", "cancel"): "JOB_ID",
    ("serve",): "Example:",
    ("worker",): "Example:",
    ("keys",): "Example:",
    ("keys", "create"): "search|generate|ingest|admin",
    ("keys", "list"): "Example:",
    ("keys", "revoke"): "Example:",
    ("reindex",): "Example:",
    ("demo",): "Example:",
}

# Runs a CLI command in-process, then prints whether torch was ever imported.
PROBE = """
import sys
from api.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("TORCH-LOADED" if "torch" in sys.modules else "TORCH-ABSENT")
"""


def run_cli(
    settings: Settings, *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``sensorium ARGS`` in a fresh process with these settings."""
    env = {**env_for(settings), "COLUMNS": "200", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def probe(settings: Settings, *args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    """Return the command's output followed by TORCH-LOADED or TORCH-ABSENT."""
    env = {**env_for(settings), **(extra_env or {})}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    return result.stdout + result.stderr


def test_every_help_exits_0_names_its_choices_and_shows_an_example(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for command, expected in HELP_CHOICES.items():
        for flag in ("--help", "-h"):
            result = run_cli(settings, *command, flag, cwd=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
            assert expected in result.stdout and "Example:" in result.stdout, (command, result.stdout)
            assert "<bool>" not in result.stdout and "list[" not in result.stdout, command
    search_help = run_cli(settings, "search", "--help", cwd=tmp_path).stdout
    assert "image|audio|video" in search_help and "INTEGER" in search_help
    version = run_cli(settings, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("sensorium ")


def test_commands_that_need_no_model_never_import_torch(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 3)
    assert run_cli(settings, "ingest", "lib", cwd=tmp_path).returncode == 0
    for args in (
        ("search", "img", "--mode", "text"),
        ("search", "--like", "no-such-asset"),
        ("search", "x", "--kind", "hologram"),
        ("jobs", "list"),
        ("assets", "list"),
        ("keys", "list"),
        ("ingest", "no-such-folder"),
        ("--help",),
    ):
        output = probe(settings, *args, cwd=tmp_path)
        assert "TORCH-ABSENT" in output, (args, output)
    text = probe(settings, "search", "img", "--mode", "text", cwd=tmp_path)
    assert "img-00000.png" in text  # it did search, by file name
    assert "no asset with id 'no-such-asset'" in probe(settings, "search", "--like", "no-such-asset", cwd=tmp_path)


def test_random_weights_warn_in_json_and_once_on_the_terminal(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 2)
    ingested = run_cli(settings, "ingest", "lib", cwd=tmp_path)
    assert ingested.returncode == 0 and ingested.stderr.count("seeded random weights") == 1
    found = run_cli(settings, "search", "a cat", "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    warnings = json.loads(found.stdout)["warnings"]
    assert [w["code"] for w in warnings] == ["random-weights"] and "meaningless" in warnings[0]["message"]
    table = run_cli(settings, "search", "a cat", cwd=tmp_path)
    assert table.stderr.count("seeded random weights") == 1


def test_missing_weights_refuse_the_same_way_but_full_text_search_still_works(
    settings: Settings, tmp_path: Path
) -> None:
    write_images(tmp_path / "lib", 2)
    assert run_cli(settings, "ingest", "lib", cwd=tmp_path).returncode == 0
    # The library was built with tiny-clip; the same model name with weights that are not here must refuse.
    offline = {"SENSORIUM_ENCODER__PRETRAINED": "laion2b_s34b_b79k", "HF_HUB_OFFLINE": "1"}
    for args in (("search", "a cat"), ("ingest", "lib"), ("search", "--image", "lib/img-00000.png")):
        refused = run_cli(settings, *args, cwd=tmp_path, extra_env=offline)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "SENSORIUM_ENCODER__PRETRAINED=none" in refused.stderr and "hf download" in refused.stderr
        assert "Traceback" not in refused.stderr and "ERROR root" not in refused.stderr
    text = run_cli(settings, "search", "img", "--mode", "text", "--json", cwd=tmp_path, extra_env=offline)
    assert text.returncode == 0 and len(json.loads(text.stdout)["results"]) == 2


def test_cli_ingests_any_readable_path_but_never_the_data_dir(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "outside", 2)
    (tmp_path / "work").mkdir()
    configured_roots = {"SENSORIUM_INGEST__ALLOWED_ROOTS": str(tmp_path / "work")}  # a server setting
    result = run_cli(settings, "ingest", "../outside", "--json", cwd=tmp_path / "work", extra_env=configured_roots)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["indexed"], summary["failed"]) == (2, 0)
    # The data dir (thumbnails, blobs) lies under tmp_path: walking tmp_path must not ingest it.
    assert any((settings.data_dir).rglob("*.jpg"))
    again = json.loads(run_cli(settings, "ingest", str(tmp_path), "--json", cwd=tmp_path / "work").stdout)
    assert (again["indexed"], again["skipped"], again["failed"]) == (0, 2, 0)
    inside = run_cli(settings, "ingest", str(settings.data_dir), "--json", cwd=tmp_path)
    assert "inside the data dir" in json.loads(inside.stdout)["failures"][0]["reason"]


@pytest.mark.parametrize("bad", ["[not json", "{}"])
def test_allowed_roots_setting_takes_a_colon_list_or_json_and_says_what_is_wrong(tmp_path: Path, bad: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    good = run_cli(settings, "jobs", "list", cwd=tmp_path, extra_env={"SENSORIUM_INGEST__ALLOWED_ROOTS": "/a:/b"})
    assert good.returncode == 0, good.stderr
    wrong = run_cli(settings, "jobs", "list", cwd=tmp_path, extra_env={"SENSORIUM_INGEST__ALLOWED_ROOTS": bad})
    assert wrong.returncode == 2 and "SENSORIUM_INGEST__ALLOWED_ROOTS" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_search_table_shows_where_and_ranks_after_offset(settings: Settings, tmp_path: Path) -> None:
    empty = run_cli(settings, "search", "anything", "--mode", "text", cwd=tmp_path)
    assert empty.returncode == 0 and "sensorium ingest PATH" in empty.stdout
    write_images(tmp_path / "lib", 5)
    assert run_cli(settings, "ingest", "lib", "--collection", "shots", cwd=tmp_path).returncode == 0
    page = run_cli(settings, "search", "img", "--mode", "text", "-k", "2", "--offset", "2", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    header = next(line for line in page.stdout.splitlines() if "collection" in line)
    assert all(column in header for column in ("#", "fused", "name", "path", "moment", "words"))
    ranks = [line.split()[1] for line in page.stdout.splitlines() if line.startswith("│") and "shots" in line]
    assert ranks == ["3", "4"]
    assert str(tmp_path / "lib") in page.stdout and "more: --offset 4" in page.stdout
    last = run_cli(settings, "search", "img", "--mode", "text", "-k", "2", "--offset", "4", cwd=tmp_path)
    assert "more:" not in last.stdout
    hybrid = run_cli(settings, "search", "img", "-k", "5", cwd=tmp_path)
    header = next(line for line in hybrid.stdout.splitlines() if "collection" in line)
    assert "fused" in header and "cosine" in header
