"""deploy/ manifests, checked without Docker or a cluster: official schemas, wiring, settings, CLI commands, probes.

Kubernetes: kubernetes-validate (PyPI) with the Kubernetes OpenAPI schemas it bundles, strict (unknown fields fail),
with the network switched off in-process to prove it needs none. Compose: the Compose Specification JSON schema,
vendored as tests/deploy/compose-spec.json from compose-spec/compose-spec (schema/compose-spec.json, Apache-2.0,
LICENSE.compose-spec beside it), the copy shipped in check-jsonschema 0.39.0 (PyPI) as
check_jsonschema/builtin_schemas/vendor/compose-spec.json.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import free_port
from tests.conftest import TINY_ENV
from tests.deploy.deploy_files import (
    COMPOSE,
    COMPOSE_SERVICES,
    DEPLOY,
    DEPLOYMENTS,
    DOCKERFILES,
    compose,
    dockerfile,
    env_of,
    file_convention_target,
    k8s_documents,
    k8s_object,
    single_container,
)

# The oldest Kubernetes minor still commonly run, and the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.30", "1.37")
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")
# Kubernetes resource quantities (apimachinery's pattern): "8Gi" is valid, "8GB" is not.
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
# Variables the manifests may set that are not Sensorium settings, with who reads them.
OTHER_VARIABLES = {
    "PGPASSWORD": "libpq (psycopg): the database password, kept out of SENSORIUM_DATABASE_URL",
    "XDG_CACHE_HOME": "Hugging Face and torch caches for model weights",
    "POSTGRES_USER": "postgres image",
    "POSTGRES_DB": "postgres image",
    "POSTGRES_PASSWORD_FILE": "postgres image: its own secret-file convention",
    "PYTHONDONTWRITEBYTECODE": "Python",
    "PYTHONUNBUFFERED": "Python",
    "PIP_NO_CACHE_DIR": "pip, at build time",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, at build time",
    "DEBIAN_FRONTEND": "apt, at build time",
    "VIRTUAL_ENV": "the GPU image's venv",
    "PATH": "the GPU image's venv",
}
SECRET_PLACEHOLDER = "secret-read-from-a-file"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any network use in this process fail loudly."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network use during an offline check: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --- Kubernetes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "document"), k8s_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_kubernetes_manifest_matches_the_official_schema(path: str, document: dict[str, Any], no_network: None) -> None:
    import kubernetes_validate

    for version in K8S_VERSIONS:
        kubernetes_validate.validate(document, version, strict=True)


def test_kubernetes_validation_is_strict_and_catches_mistakes(no_network: None) -> None:
    import kubernetes_validate

    api = k8s_object("Deployment", "sensorium-api")
    misspelt = copy.deepcopy(api)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(api)
    single_container(wrong_type)["ports"][0]["containerPort"] = "8000"
    for broken, message in ((misspelt, "'replica' was unexpected"), (wrong_type, "is not of type 'integer'")):
        with pytest.raises(kubernetes_validate.ValidationError, match=message):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_deployments_request_resources_and_probe_the_api() -> None:
    for role, name in DEPLOYMENTS.items():
        container = single_container(k8s_object("Deployment", name))
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}: requests"
        assert "memory" in resources["limits"], f"{name}: a memory limit"
        for section in resources.values():
            for value in section.values():
                assert QUANTITY.match(str(value)), f"{name}: {value!r} is not a Kubernetes quantity"
        if role == "worker-gpu":
            assert resources["limits"]["nvidia.com/gpu"] == 1, "one GPU per GPU worker"
        else:
            assert not any("nvidia.com/gpu" in section for section in resources.values())

    api = single_container(k8s_object("Deployment", "sensorium-api"))
    port_names = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["port"] in port_names
    assert port_names["http"] == int(api["command"][api["command"].index("--port") + 1])


def test_kubernetes_objects_refer_to_each_other() -> None:
    config = k8s_object("ConfigMap", "sensorium-settings")
    secret = k8s_object("Secret", "sensorium-secrets")
    claims = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "PersistentVolumeClaim"}
    assert claims["sensorium-data"]["spec"]["accessModes"] == ["ReadWriteMany"], "every pod shares the data dir"

    for name in DEPLOYMENTS.values():
        deployment = k8s_object("Deployment", name)
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        container = single_container(deployment)
        assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [config["metadata"]["name"]]
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
        assert set(volumes.values()) <= set(claims), f"{name} mounts a claim that deploy/k8s does not define"
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert volumes[mounts["/data"]["name"]] == "sensorium-data"
        assert mounts["/library"].get("readOnly") is True, "path ingest only reads the library"

    service = k8s_object("Service", "sensorium-api")
    api_pod = k8s_object("Deployment", "sensorium-api")["spec"]["template"]
    assert service["spec"]["selector"].items() <= api_pod["metadata"]["labels"].items()
    port_names = {port["name"] for port in single_container(k8s_object("Deployment", "sensorium-api"))["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_k8s_secret_placeholders_are_kept_out_of_the_applied_folder() -> None:
    # `kubectl apply -f deploy/k8s/` must never install placeholder credentials.
    applied = {doc["kind"] for path, doc in k8s_documents() if "/" not in path.removeprefix("k8s/")}
    assert "Secret" not in applied


# --- Compose ----------------------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(no_network: None) -> None:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []

    broken = compose()
    broken["services"]["api"]["healthcheck"]["intervall"] = "5s"
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown key"


def test_compose_wiring() -> None:
    spec = compose()
    services = spec["services"]
    postgres_env = services["postgres"]["environment"]
    for role in COMPOSE_SERVICES:
        service = services[role]
        env = service["environment"]
        assert "data:/data" in service["volumes"], f"{role} shares the data volume"
        assert any(v.endswith(":/library:ro") for v in service["volumes"]), f"{role} reads the library"
        assert {"postgres", "redis"} <= set(service["depends_on"])
        url = env["SENSORIUM_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://")
        assert (
            url == f"postgresql+psycopg://{postgres_env['POSTGRES_USER']}@postgres:5432/{postgres_env['POSTGRES_DB']}"
        )
        assert env["SENSORIUM_BROKER_URL"].startswith("redis://redis:")
        # Every secret file a variable points at is mounted into that service and declared.
        for name, value in env.items():
            if name.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in service["secrets"] and secret in spec["secrets"], f"{role}: {name}"
    assert "SENSORIUM_API__SIGNING_KEY_FILE" in services["api"]["environment"]

    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert (
        services["api"]["build"]["dockerfile"]
        == services["worker-ingest"]["build"]["dockerfile"]
        == "deploy/Dockerfile"
    )
    for path in {s["build"]["dockerfile"] for s in services.values() if "build" in s}:
        assert (COMPOSE.parent / services["api"]["build"]["context"] / path).is_file()
    for secret in spec["secrets"].values():
        assert (COMPOSE.parent / secret["file"]).parent == DEPLOY / "secrets"


def test_compose_healthchecks_probe_readiness() -> None:
    services = compose()["services"]
    api = services["api"]
    test = api["healthcheck"]["test"]
    assert test[0] == "CMD" and "/readyz" in test[-1]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/" in test[-1]
    assert any(mapping.endswith(f":{port}") for mapping in api["ports"])
    for dependency in ("postgres", "redis"):
        assert services[dependency]["healthcheck"]["test"][0] == "CMD"


# --- Commands, settings and the entrypoint ------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, str, list[str]]]:
    services = compose()["services"]
    for role in COMPOSE_SERVICES:
        yield "compose", role, services[role]["command"]
        yield "k8s", role, single_container(k8s_object("Deployment", DEPLOYMENTS[role]))["command"]
    for kind, path in DOCKERFILES.items():
        cmd = [ins for ins in dockerfile(path) if ins.cmd == "CMD"][-1]
        yield "image", kind, list(cmd.value)


EXPECTED_COMMANDS = {
    "api": ("serve", {"host": "0.0.0.0"}),
    "worker-ingest": ("worker", {"queues": "ingest"}),
    "worker-gpu": ("worker", {"queues": "gpu,ingest"}),
    "cpu": ("serve", {"host": "0.0.0.0"}),
    "gpu": ("worker", {"queues": "gpu,ingest"}),
}


def test_commands_are_valid_sensorium_cli_invocations() -> None:
    import typer

    from api.cli import app
    from core.jobs import QUEUES

    group: Any = typer.main.get_command(app)
    for where, role, argv in _commands():
        assert argv[0] == "sensorium", f"{where} {role}: {argv}"
        name, expected = EXPECTED_COMMANDS[role]
        assert argv[1] == name, f"{where} {role}: {argv}"
        # Parses and validates the options (unknown options, ranges) without running the command.
        context = group.commands[name].make_context(name, argv[2:])
        assert expected.items() <= context.params.items(), f"{where} {role}: {context.params}"
        if name == "worker":
            assert set(context.params["queues"].split(",")) <= set(QUEUES)
            assert context.params["concurrency"] == 1, "one job at a time per worker: long GPU jobs, prefetch 1"


def _setting_exists(variable: str) -> bool:
    from pydantic import BaseModel

    from core.settings import Settings

    prefix = Settings.model_config["env_prefix"]
    delimiter = Settings.model_config["env_nested_delimiter"] or "__"
    if not variable.startswith(prefix):
        return False
    model: type[BaseModel] = Settings
    parts = variable.removeprefix(prefix).lower().split(delimiter)
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if depth < len(parts) - 1:
            annotation = field.annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def _deployment_env(name: str) -> dict[str, str]:
    secret = k8s_object("Secret", "sensorium-secrets")["stringData"]
    env = dict(k8s_object("ConfigMap", "sensorium-settings")["data"])
    for variable in single_container(k8s_object("Deployment", name)).get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        env[variable["name"]] = secret[ref["key"]] if ref else variable["value"]
    return env


def _manifest_environments() -> Iterator[tuple[str, dict[str, str]]]:
    services = compose()["services"]
    for service in ("postgres", *COMPOSE_SERVICES):
        yield f"compose {service}", {k: str(v) for k, v in services[service].get("environment", {}).items()}
    for name in DEPLOYMENTS.values():
        yield f"k8s {name}", _deployment_env(name)
    for kind, path in DOCKERFILES.items():
        yield f"{kind} image", env_of(dockerfile(path))


def test_every_variable_the_manifests_set_is_a_real_setting() -> None:
    unknown = []
    for where, env in _manifest_environments():
        for variable in env:
            target = file_convention_target(variable)
            if target.startswith("SENSORIUM_"):
                if not _setting_exists(target):
                    unknown.append(f"{where}: {variable}")
            elif target not in OTHER_VARIABLES and variable not in OTHER_VARIABLES:
                unknown.append(f"{where}: {variable} (not a Sensorium setting; add it to OTHER_VARIABLES if meant)")
    assert unknown == []


def test_the_settings_tree_rejects_a_misspelt_variable() -> None:
    assert _setting_exists("SENSORIUM_INGEST__ALLOWED_ROOTS")
    assert not _setting_exists("SENSORIUM_INGEST__ALLOWED_ROOT")
    assert not _setting_exists("SENSORUM_DATA_DIR")
    assert not _setting_exists("SENSORIUM_DATA_DIR__X")


def _settings_for(env: dict[str, str], image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from core.settings import Settings

    for name in list(os.environ):
        if name.startswith("SENSORIUM_"):
            monkeypatch.delenv(name)
    for name, value in {**image_env, **env}.items():
        target = file_convention_target(name)
        if target.startswith("SENSORIUM_"):
            monkeypatch.setenv(target, SECRET_PLACEHOLDER if target != name else value)
    return Settings()


@pytest.mark.parametrize("role", COMPOSE_SERVICES)
def test_manifest_settings_parse_to_production_mode(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    image = env_of(dockerfile(DOCKERFILES["gpu" if role == "worker-gpu" else "cpu"]))
    environments = {
        "compose": {k: str(v) for k, v in compose()["services"][role]["environment"].items()},
        "k8s": _deployment_env(DEPLOYMENTS[role]),
    }
    for where, env in environments.items():
        settings = _settings_for(env, image, monkeypatch)
        assert settings.data_dir == Path("/data"), where
        assert settings.database_url and settings.database_url.startswith("postgresql+psycopg://"), where
        assert settings.broker_url and settings.broker_url.startswith("redis://"), where
        assert settings.ingest.allowed_roots == [Path("/library")], where
        assert settings.encoder.device == ("cuda" if role == "worker-gpu" else "cpu"), where
        if role == "api":
            assert settings.api.signing_key, f"{where}: every API replica must share one URL-signing key"


def test_entrypoint_turns_secret_files_into_variables(tmp_path: Path) -> None:
    key = tmp_path / "api_signing_key"
    key.write_text("abc123\n")
    password = tmp_path / "postgres_password"
    password.write_text("pw")
    env = {
        "PATH": os.environ["PATH"],
        "SENSORIUM_API__SIGNING_KEY_FILE": str(key),
        "PGPASSWORD_FILE": str(password),
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    }
    done = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), "env"], env=env, capture_output=True, text=True, check=True
    )
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["SENSORIUM_API__SIGNING_KEY"] == "abc123"
    assert seen["PGPASSWORD"] == "pw"
    assert "SENSORIUM_API__SIGNING_KEY_FILE" not in seen and "PGPASSWORD_FILE" not in seen
    assert seen["SSL_CERT_FILE"] == env["SSL_CERT_FILE"], "other *_FILE variables name real files: left alone"

    env["SENSORIUM_API__SIGNING_KEY_FILE"] = str(tmp_path / "missing")
    failed = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), "true"], env=env, capture_output=True, text=True
    )
    assert failed.returncode == 78
    assert "SENSORIUM_API__SIGNING_KEY_FILE" in failed.stderr and "not readable" in failed.stderr


# --- The probes against a real server -------------------------------------------------------------------------------


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    test = compose()["services"]["api"]["healthcheck"]["test"]
    api = compose()["services"]["api"]
    configured = api["command"][api["command"].index("--port") + 1]
    argv = [sys.executable if word == "python" else word for word in test[1:]]
    argv[-1] = argv[-1].replace(f"127.0.0.1:{configured}/", f"127.0.0.1:{port}/")
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.slow
def test_probes_work_against_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    assert _healthcheck(port).returncode != 0, "no server yet: the compose healthcheck must fail"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update(TINY_ENV)
    env["SENSORIUM_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(DEPLOY.parent)
    api = single_container(k8s_object("Deployment", "sensorium-api"))
    argv = [sys.executable, "-m", "api.cli", *api["command"][1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"  # tests bind to loopback only
    argv[argv.index("--port") + 1] = str(port)
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while _healthcheck(port).returncode != 0:
            assert server.poll() is None, f"server exited: {server.stderr.read() if server.stderr else ''}"
            assert time.monotonic() < deadline, "the compose healthcheck never passed"
            time.sleep(0.5)
        for probe in ("readinessProbe", "livenessProbe"):
            path = api[probe]["httpGet"]["path"]
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            assert response.status_code == 200, f"{path}: {response.text}"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()["status"] == "ready"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
