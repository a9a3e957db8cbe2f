"""Readers for the files under deploy/: Kubernetes documents, the compose file, Dockerfiles and the env they set."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILES = {"cpu": DEPLOY / "Dockerfile", "gpu": DEPLOY / "Dockerfile.gpu"}
# The Sensorium services in docker-compose.yml and the Deployments in deploy/k8s, by role.
COMPOSE_SERVICES = ("api", "worker-ingest", "worker-gpu")
DEPLOYMENTS = {"api": "sensorium-api", "worker-ingest": "sensorium-worker-ingest", "worker-gpu": "sensorium-worker-gpu"}
# What deploy/docker-entrypoint.sh turns from NAME_FILE into NAME.
_FILE_CONVENTION = re.compile(r"^(SENSORIUM_[A-Z0-9_]+|PGPASSWORD)_FILE$")


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """Return (relative path, document) for every YAML document under deploy/k8s, examples included."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((str(path.relative_to(DEPLOY)), document))
    return found


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """Return the deploy/k8s document of ``kind`` named ``name``."""
    for _, document in k8s_documents():
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise LookupError(f"no {kind} {name} under deploy/k8s")


def compose() -> dict[str, Any]:
    """Return docker-compose.yml with its anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def single_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """Return the one container of a Deployment (each Sensorium Deployment runs exactly one)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']} should run one container"
    container: dict[str, Any] = containers[0]
    return container


def file_convention_target(name: str) -> str:
    """Return the variable the entrypoint fills from ``name`` (``X_FILE`` -> ``X``), or ``name`` itself."""
    match = _FILE_CONVENTION.match(name)
    return match.group(1) if match else name


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction as Docker's parser reads it."""

    cmd: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    original: str


def dockerfile(path: Path) -> list[Instruction]:
    """Return the instructions of a Dockerfile, parsed with Docker's own (BuildKit) parser."""
    import dockerfile as docker_parser

    return [
        Instruction(c.cmd.upper(), tuple(c.flags), tuple(c.value), c.original)
        for c in docker_parser.parse_file(str(path))
    ]


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """Return the default of every ``ARG NAME=default``."""
    defaults = {}
    for ins in instructions:
        if ins.cmd == "ARG":
            for item in ins.value:
                name, _, default = item.partition("=")
                defaults[name] = default
    return defaults


def base_image(instructions: list[Instruction]) -> str:
    """Return the (last) FROM image with ARG defaults substituted."""
    image = [ins.value[0] for ins in instructions if ins.cmd == "FROM"][-1]
    for name, default in arg_defaults(instructions).items():
        image = image.replace("${" + name + "}", default).replace("$" + name, default)
    return image


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """Return the variables set by ENV (the parser gives name, value pairs)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "ENV":
            env.update(zip(ins.value[0::2], ins.value[1::2], strict=True))
    return env


def copies(instructions: list[Instruction]) -> list[tuple[list[str], str]]:
    """Return (sources, destination) of every COPY without --from (files taken from the build context)."""
    return [
        (list(ins.value[:-1]), ins.value[-1])
        for ins in instructions
        if ins.cmd == "COPY" and not any(flag.startswith("--from") for flag in ins.flags)
    ]


@dataclass(frozen=True)
class ShellCommand:
    """One simple command of a RUN line: its words and the file its stdout goes to, if redirected."""

    argv: list[str]
    stdout: str | None


def shell_commands(instructions: list[Instruction]) -> Iterator[ShellCommand]:
    """Yield each simple command of every RUN, split on ``&&``, ``||`` and ``;`` (pipelines stay one command)."""
    for ins in instructions:
        if ins.cmd != "RUN":
            continue
        for part in re.split(r"&&|\|\||;", ins.value[0]):
            words = shlex.split(part.strip().strip("()"))
            if ">" in words:
                at = words.index(">")
                yield ShellCommand(words[:at] + words[at + 2 :], words[at + 1])
            elif words:
                yield ShellCommand(words, None)


def dockerignore(path: Path) -> list[str]:
    """Return the patterns of the Dockerfile-specific ignore file (``<Dockerfile>.dockerignore``)."""
    ignore = path.with_name(path.name + ".dockerignore")
    return [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
