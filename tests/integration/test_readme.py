"""The README's commands, run as printed and in order on a fresh data dir, offline (no model weights here).

Blocks marked in the README with a ``tests/integration/test_readme.py`` comment are run. Without weights a command
succeeds or fails with the documented refusal (exit 2, naming SENSORIUM_ENCODER__PRETRAINED=none); with the
documented ``export SENSORIUM_ENCODER__PRETRAINED=none`` every command succeeds, except lines whose comment says
``offline: fails, "<message>"``, which must fail with that message.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.media_images import write_images

REPO = Path(__file__).resolve().parents[2]
MARKER = "tests/integration/test_readme.py"
REFUSAL = "SENSORIUM_ENCODER__PRETRAINED=none"
NEEDS_NO_MODEL = ("--mode text", "generate --list", "jobs list")
_OFFLINE_FAILURE = re.compile(r'#\s*offline: fails, "([^"]+)"')
_JOB_ID = re.compile(r"\bjob ([0-9a-f]{32}|[0-9a-f-]{36})\b")


def readme_blocks() -> list[list[str]]:
    """Return the command lines of each marked bash block, in README order."""
    lines = (REPO / "README.md").read_text().splitlines()
    blocks: list[list[str]] = []
    for number, line in enumerate(lines):
        if MARKER in line and line.startswith("<!--"):
            start = lines.index("```bash", number) + 1
            end = lines.index("```", start)
            blocks.append([c for c in lines[start:end] if c.startswith(("sensorium ", "export "))])
    return blocks


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update({"SENSORIUM_DATA_DIR": str(tmp_path / "sensorium-data"), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    return env


def _media(folder: Path) -> None:
    photos = write_images(folder / "photos", 3, suffix=".jpg")
    shutil.copy(photos[0], folder / "query.jpg")


def run_block(commands: list[str], env: dict[str, str], cwd: Path, ids: dict[str, str]) -> list[tuple[str, int, str]]:
    """Run each command as printed (``sensorium`` = this checkout's CLI); return (command, exit code, output)."""
    ran = []
    for line in commands:
        command = line.split("  #")[0].strip()
        if command.startswith("export "):
            for assignment in shlex.split(command.removeprefix("export "), comments=True):
                key, _, value = assignment.partition("=")
                env[key] = value
            continue
        if any(f"<{name}>" in command for name in ("asset-id", "job-id") if name not in ids):
            continue  # nothing made such an id yet (the commands that would have were refused)
        for name, value in ids.items():
            command = command.replace(f"<{name}>", value)
        argv = [sys.executable, "-m", "api.cli", *shlex.split(command, comments=True)[1:]]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        output = done.stdout + done.stderr
        if done.returncode == 0 and command.endswith("--json") and '"results"' in done.stdout:
            ids["asset-id"] = json.loads(done.stdout)["results"][0]["asset_id"]
        if done.returncode == 0 and (job := _JOB_ID.search(output)):
            ids["job-id"] = job.group(1)
        ran.append((line, done.returncode, output))
    return ran


@pytest.mark.slow
def test_readme_commands_run_offline_as_documented(tmp_path: Path) -> None:
    using, offline = readme_blocks()
    assert len(using) >= 10 and offline[0].startswith("export SENSORIUM_ENCODER__PRETRAINED=none")

    # Without weights: each command works, or refuses with the documented message and a non-zero exit.
    (tmp_path / "without").mkdir()
    _media(tmp_path / "without")
    env = _environment(tmp_path / "without")
    for line, code, output in run_block(using, env, tmp_path / "without", {}):
        if any(part in line for part in NEEDS_NO_MODEL):
            assert code == 0, (line, output)
        elif code != 0:
            expected = _OFFLINE_FAILURE.search(line)
            assert code == 2 and (REFUSAL in output or (expected and expected.group(1) in output)), (line, output)
            assert "Traceback" not in output, line
        else:
            assert "Traceback" not in output, line

    # The offline rule: PRETRAINED=none, then every command of the README runs.
    (tmp_path / "with").mkdir()
    _media(tmp_path / "with")
    env = _environment(tmp_path / "with")
    ids: dict[str, str] = {}
    ran = run_block(offline, env, tmp_path / "with", ids) + run_block(using, env, tmp_path / "with", ids)
    skipped = set(offline[1:] + using) - {line for line, _, _ in ran}
    assert not skipped, (skipped, ran)  # every command ran (ids were found for the placeholders)
    for line, code, output in ran:
        expected = _OFFLINE_FAILURE.search(line)
        if expected:
            assert code != 0 and expected.group(1) in output, (line, output)
        else:
            assert code == 0 and "Traceback" not in output, (line, output)
    assert "seeded random weights" in ran[1][2]
