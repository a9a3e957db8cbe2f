"""`sensorium keys create|list|revoke` and the `serve` safety check, as real CLI processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from core.apikeys import verify_key
from core.settings import Settings
from tests.conftest import env_for

REPO = Path(__file__).resolve().parents[2]


def cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO,
        env={**env_for(settings), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_create_list_revoke(settings: Settings) -> None:
    created = cli(settings, "keys", "create", "--name", "ci", "--scope", "search", "--scope", "ingest", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert set(key) == {"id", "name", "scopes", "secret"} and key["scopes"] == ["search", "ingest"]
    assert verify_key(key["secret"], settings) is not None

    listed = json.loads(cli(settings, "keys", "list", "--json").stdout)["keys"]
    assert [(k["id"], k["revoked"]) for k in listed] == [(key["id"], False)]
    assert key["secret"] not in json.dumps(listed)

    human = cli(settings, "keys", "create", "--name", "ops", "--scope", "admin")
    assert human.returncode == 0 and "shown once" in human.stdout

    revoked = cli(settings, "keys", "revoke", key["id"])
    assert revoked.returncode == 0 and verify_key(key["secret"], settings) is None
    unknown = cli(settings, "keys", "revoke", "nope")
    assert unknown.returncode == 2 and "no API key" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_scope = cli(settings, "keys", "create", "--name", "x", "--scope", "root")
    # The scope is a choice: the usage error names the option, the bad value and every scope there is.
    message = " ".join(re.sub("[│╭╮╰╯─]", " ", bad_scope.stderr).split())
    assert bad_scope.returncode == 2 and "Traceback" not in bad_scope.stderr
    assert "Invalid value for '--scope'" in message, bad_scope.stderr
    assert "'root' is not one of 'search', 'generate', 'ingest', 'admin'" in message, bad_scope.stderr


def test_serve_refuses_disabled_auth_off_loopback(settings: Settings) -> None:
    refused = cli(settings, "serve", "--host", "0.0.0.0", "--port", "1", SENSORIUM_AUTH__DISABLED="true")
    assert refused.returncode == 2
    assert "SENSORIUM_AUTH__DISABLED" in refused.stderr and "Traceback" not in refused.stderr


def test_serve_checks_the_address_of_an_inherited_socket(settings: Settings) -> None:
    """`serve --fd N` applies the loopback rule to where that socket is bound, not to the --host default."""
    import socket

    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(1)
        refused = subprocess.run(
            [sys.executable, "-m", "api.cli", "serve", "--fd", str(sock.fileno())],
            cwd=REPO,
            env={**env_for(settings), "SENSORIUM_AUTH__DISABLED": "true"},
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(sock.fileno(),),
        )
    assert refused.returncode == 2
    assert "only allowed on a loopback address, not 0.0.0.0" in refused.stderr and "Traceback" not in refused.stderr
