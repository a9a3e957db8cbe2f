"""deploy/ images, checked without a Docker engine.

The Dockerfiles are parsed with Docker's own parser (the `dockerfile` package wraps BuildKit's) and their install steps
compared with pyproject.toml; the project layer (`pip install --no-deps /src`) is built from exactly the files the
COPY lines take and run in a throwaway venv; and the dependency lines each image installs are resolved by pip for
the image's Python version and glibc. Building the whole image is not possible here (no Docker, about 5 GB of torch).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DEPLOY,
    DOCKERFILES,
    ROOT,
    Instruction,
    ShellCommand,
    arg_defaults,
    base_image,
    copies,
    dockerfile,
    dockerignore,
    shell_commands,
)

PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS_SCRIPT = DEPLOY / "requirements.py"
FAISS = {"cpu": "faiss-cpu", "gpu": "faiss-gpu"}
# glibc of each base image's distribution: pip may only pick wheels built for that glibc or older.
GLIBC_MINOR = {"bookworm": 36, "ubuntu24.04": 39}
# No wheel on PyPI (pure Python, built from its sdist): resolved through its declared requirements instead.
SDIST_ONLY = {"openai-whisper", "wordninja"}
NETWORK_ERRORS = ("NewConnectionError", "Temporary failure in name resolution", "Max retries exceeded", "timed out")


def _name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    assert match, line
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _pyproject() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(PYPROJECT.read_text())["project"]
    return project


def _pinned(name: str) -> str:
    dependencies = _pyproject()["dependencies"]
    assert isinstance(dependencies, list)
    return next(line for line in dependencies if _name(line) == name)


def _run_requirements(args: list[str]) -> list[str]:
    """Run deploy/requirements.py as a RUN line does, against this checkout's pyproject.toml."""
    args = [str(PYPROJECT) if arg == "pyproject.toml" else arg for arg in args]
    done = subprocess.run([sys.executable, str(REQUIREMENTS_SCRIPT), *args], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def _pip_installs(instructions: list[Instruction]) -> list[tuple[ShellCommand, list[str]]]:
    """Return each `pip install` of the Dockerfile with the requirement lines it installs (``-r`` files expanded)."""
    written: dict[str, list[str]] = {}
    installs = []
    for command in shell_commands(instructions):
        argv = command.argv
        if argv[:2] == ["python", "requirements.py"] and command.stdout:
            written[command.stdout] = _run_requirements(argv[2:])
        elif argv[:2] == ["pip", "install"]:
            lines: list[str] = []
            words = iter(argv[2:])
            for word in words:
                if word == "-r":
                    lines += written[next(words)]
                elif word in ("--index-url", "--extra-index-url"):
                    next(words)
                elif not word.startswith("-"):
                    lines.append(word)
            installs.append((command, lines))
    return installs


def _dependency_lines(kind: str) -> list[str]:
    """Return every requirement line the image installs before the project itself."""
    lines = []
    for command, installed in _pip_installs(dockerfile(DOCKERFILES[kind])):
        if "--no-deps" not in command.argv:
            lines += [line for line in installed if line not in lines]
    return lines


def _image_python(kind: str) -> tuple[int, int]:
    instructions = dockerfile(DOCKERFILES[kind])
    image = base_image(instructions)
    found = re.match(r"python:(\d+)\.(\d+)", image)
    if found is None:  # a distribution image: the Python its RUN line makes the venv with
        found = re.search(r"python(\d+)\.(\d+) -m venv", " ".join(i.value[0] for i in instructions if i.cmd == "RUN"))
    assert found, f"{kind}: cannot tell which Python the image runs"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_installs_what_pyproject_declares(kind: str) -> None:
    instructions = dockerfile(DOCKERFILES[kind])
    lines = _dependency_lines(kind)
    project = _pyproject()
    optional = project["optional-dependencies"]
    dependencies = project["dependencies"]
    assert isinstance(optional, dict) and isinstance(dependencies, list)

    # Exactly pyproject's dependencies plus the postgres extra (production mode's psycopg), faiss swapped per image.
    expected = {
        FAISS[kind] + line[len("faiss-cpu") :] if _name(line) == "faiss-cpu" else line
        for line in dependencies + optional["postgres"]
    }
    assert set(lines) == expected
    names = [_name(line) for line in lines]
    assert [n for n in names if n.startswith("faiss")] == [FAISS[kind]], "one FAISS build per image, never both"
    every_pip_install = [
        _name(line) for _, installed in _pip_installs(instructions) for line in installed if line != "/src"
    ]
    assert FAISS["cpu" if kind == "gpu" else "gpu"] not in every_pip_install
    for pinned in ("torch", "torchvision"):
        assert _pinned(pinned) in lines, f"{kind} image must install {_pinned(pinned)} as pyproject pins it"
    assert "psycopg" in names

    # The project itself: no dependencies (installed above), from the files the COPY lines take.
    project_installs = [cmd for cmd, _ in _pip_installs(instructions) if "--no-deps" in cmd.argv]
    assert [cmd.argv for cmd in project_installs] == [["pip", "install", "--no-deps", "/src"]]
    sources = {src for srcs, dest in copies(instructions) if dest.startswith("/src/") for src in srcs}
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    top_level = {pattern.rstrip("*") for pattern in packages}
    assert sources == top_level | {"pyproject.toml", "README.md"}

    # Dependencies are a layer of their own, built from pyproject.toml before any source is copied.
    first_dependency_run = next(
        i for i, ins in enumerate(instructions) if ins.cmd == "RUN" and "requirements.py" in ins.original
    )
    first_source_copy = next(
        i for i, ins in enumerate(instructions) if ins.cmd == "COPY" and ins.value[-1].startswith("/src/")
    )
    assert first_dependency_run < first_source_copy

    # Runs as an unprivileged user through the secret-file entrypoint.
    user = [ins.value[0] for ins in instructions if ins.cmd == "USER"][-1]
    assert user not in ("root", "0")
    entrypoint = [ins.value for ins in instructions if ins.cmd == "ENTRYPOINT"][-1]
    assert any(
        dest == f"/usr/local/bin/{entrypoint[0]}" and srcs == ["deploy/docker-entrypoint.sh"]
        for srcs, dest in copies(instructions)
    )

    python = _image_python(kind)
    minimum = re.match(r">=\s*(\d+)\.(\d+)", str(project["requires-python"]))
    assert minimum and python >= (int(minimum.group(1)), int(minimum.group(2)))


def test_cpu_image_takes_torch_from_the_cpu_wheel_index() -> None:
    instructions = dockerfile(DOCKERFILES["cpu"])
    assert arg_defaults(instructions)["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    torch_installs = [(cmd, lines) for cmd, lines in _pip_installs(instructions) if "--index-url" in cmd.argv]
    assert len(torch_installs) == 1
    command, lines = torch_installs[0]
    assert command.argv[command.argv.index("--index-url") + 1] == "${TORCH_INDEX_URL}"
    assert {_name(line) for line in lines} == {"torch", "torchvision"}


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_build_context_filter_lets_every_copied_file_through(kind: str) -> None:
    patterns = dockerignore(DOCKERFILES[kind])
    assert patterns[0] == "*", "allow-list: nothing but what is named reaches the build context"
    for sources, _ in copies(dockerfile(DOCKERFILES[kind])):
        for source in sources:
            assert f"!{source}" in patterns, f"{source} is copied but filtered out of the context"


@pytest.mark.slow
def test_image_project_layer_builds_and_runs(tmp_path: Path) -> None:
    """Build and install the project layer exactly from the COPY'd files, then run its console script."""
    cpu, gpu = (dockerfile(DOCKERFILES[kind]) for kind in ("cpu", "gpu"))
    layer = [(srcs, dest) for srcs, dest in copies(cpu) if dest.startswith("/src/")]
    assert layer == [(srcs, dest) for srcs, dest in copies(gpu) if dest.startswith("/src/")], "both images, one layer"
    src = tmp_path / "src"
    for sources, dest in layer:
        for source in sources:
            target = src / dest.removeprefix("/src/")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)

    pip = [sys.executable, "-m", "pip"]
    wheels = tmp_path / "wheels"
    # --no-build-isolation: this venv's setuptools builds it offline; the image fetches the declared build backend.
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The throwaway venv sees this venv's dependencies (the image's dependency layer) and nothing of the checkout.
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_image_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Without PYTHONPATH: a checkout on it (and any sensorium.egg-info there) would make pip skip the install as
    # "already installed", and the image has no checkout to see.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SENSORIUM_")}
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    checked = subprocess.run(
        [*pip, "--python", str(python), "check"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    sensorium = venv / "bin" / "sensorium"
    for args, expect in ((["serve", "--help"], "--host"), (["worker", "--help"], "--queues"), (["--help"], "serve")):
        done = subprocess.run([sensorium, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and expect in done.stdout, done.stderr
    where = subprocess.run(
        [
            python,
            "-c",
            "import api.cli, core.db.migrate as m; print(api.cli.__file__); "
            "print(' '.join(sorted(p.name for p in (m.MIGRATIONS_DIR / 'versions').glob('*.py'))))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert Path(where[0]).is_relative_to(venv), "the installed copy runs, not the checkout"
    shipped = " ".join(sorted(p.name for p in (ROOT / "core" / "migrations" / "versions").glob("*.py")))
    assert where[1] == shipped, "every migration ships in the image: the schema is created on first start"


def _resolution_lines(kind: str) -> list[str]:
    lines = []
    for line in _dependency_lines(kind):
        if _name(line) in SDIST_ONLY:
            declared = importlib.metadata.requires(_name(line)) or []
            lines += [req for req in declared if "extra ==" not in req]
        else:
            lines.append(line)
    return lines


def _dry_run(kind: str, report: Path) -> subprocess.CompletedProcess[str]:
    major, minor = _image_python(kind)
    distro = next(d for d in GLIBC_MINOR if d in base_image(dockerfile(DOCKERFILES[kind])))
    platforms = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    platforms += [f"manylinux_2_{n}_x86_64" for n in range(5, GLIBC_MINOR[distro] + 1)]
    requirements = report.with_suffix(".txt")
    requirements.write_text("\n".join(_resolution_lines(kind)) + "\n")
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    argv += ["--report", str(report), "--python-version", f"{major}.{minor}", "--implementation", "cp"]
    argv += [arg for platform in platforms for arg in ("--platform", platform)]
    argv += ["--only-binary=:all:", "-r", str(requirements)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_image_dependencies_resolve_for_the_image_python(tmp_path: Path) -> None:
    """pip resolves each image's dependency lines from scratch for its Python and glibc (wheels only, ~90 s)."""
    import json

    kinds = sorted(DOCKERFILES)
    with ThreadPoolExecutor(len(kinds)) as pool:  # network-bound: both at once
        results = dict(zip(kinds, pool.map(lambda k: _dry_run(k, tmp_path / f"{k}.json"), kinds), strict=True))
    for kind, done in results.items():
        if done.returncode != 0 and any(e in done.stderr for e in NETWORK_ERRORS) and not os.environ.get("CI"):
            pytest.skip(f"the package index is unreachable from here: {done.stderr.strip().splitlines()[-1]}")
        assert done.returncode == 0, f"{kind} image: {done.stderr[-3000:]}"
        installed = {
            i["metadata"]["name"].lower(): i["metadata"]["version"]
            for i in json.loads((tmp_path / f"{kind}.json").read_text())["install"]
        }
        assert FAISS[kind] in installed and FAISS["gpu" if kind == "cpu" else "cpu"] not in installed
        for pinned in ("torch", "torchvision"):
            assert f"{pinned}=={installed[pinned]}" == _pinned(pinned)
