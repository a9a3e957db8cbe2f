"""A real `sensorium serve` process per database (SQLite, PostgreSQL), shared by the API tests of one session."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import TINY_ENCODER, _postgres_database, env_for
from tests.media_images import distinct_image

REPO = Path(__file__).resolve().parents[2]
SIGNING_KEY = "test-signing-key"
MAX_UPLOAD_BYTES = 2_000_000
READY_TIMEOUT_S = 180.0


def free_port() -> int:
    """Return a free TCP port for a server that cannot take a bound socket (prefer ``listening_socket``).

    The port comes from below the kernel's ephemeral range, so neither outgoing connections nor another test's
    ``bind(port 0)`` can take it between this check and the server's own bind; random, so parallel tests rarely meet.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def listening_socket() -> socket.socket:
    """Return a loopback TCP socket already bound to a free port and listening (race-free: pass it to `serve --fd`)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def serve_argv(sock: socket.socket) -> list[str]:
    """Return the command line that runs `sensorium serve` on the inherited ``sock``."""
    return [sys.executable, "-m", "api.cli", "serve", "--fd", str(sock.fileno())]


def png_bytes(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    """Return a distinct PNG image."""
    buffer = io.BytesIO()
    distinct_image(seed, size).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class ApiServer:
    """A running server process, its settings, and an admin key."""

    url: str
    settings: Settings
    env: dict[str, str]
    library: Path
    log: Path
    process: subprocess.Popen[bytes]
    admin_secret: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, secret: str | None = "admin", timeout: float = 60.0) -> httpx.Client:
        """Return an HTTP client sending ``secret`` (a scope name for a prepared key, a raw secret, or None)."""
        headers = {}
        if secret is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(secret, secret)}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log_lines(self) -> list[dict[str, object]]:
        """Return the JSON access-log lines the server wrote so far."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``sensorium ARGS`` against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def start_server(settings: Settings, library: Path, log: Path, extra_env: dict[str, str] | None = None) -> ApiServer:
    """Start `sensorium serve` on a socket bound here (so no other process can take its port) and wait until ready."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    env = env_for(settings)
    env.update(
        {
            "SENSORIUM_INGEST__ALLOWED_ROOTS": json.dumps([str(library)]),
            "SENSORIUM_API__MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "SENSORIUM_API__SIGNING_KEY": SIGNING_KEY,
            "SENSORIUM_API__RATE_LIMIT_PER_MINUTE": "0",
            "SENSORIUM_WHISPER__ENABLED": "false",
            **(extra_env or {}),
        }
    )
    handle = log.open("wb")
    with sock:
        process = subprocess.Popen(
            serve_argv(sock), cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),)
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()}")
        time.sleep(0.3)
    return ApiServer(url, settings, env, library, log, process)


def stop_server(server: ApiServer) -> None:
    """Stop the server process (SIGTERM, then SIGKILL)."""
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def api_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """Yield a running server with keys for each scope (``admin``, ``search``, ``ingest``, ``generate``)."""
    from core.apikeys import create_key
    from core.db.engine import dispose_engines

    root = tmp_path_factory.mktemp(f"api-{request.param}")
    library = root / "library"
    library.mkdir()
    databases = _postgres_database() if request.param == "postgresql" else iter([None])
    database_url = next(databases)
    settings = Settings(data_dir=root / "data", database_url=database_url, encoder=TINY_ENCODER)
    server = start_server(settings, library, root / "server.log")
    try:
        for scope in ("admin", "search", "ingest", "generate"):
            server.keys[scope] = create_key(f"test-{scope}", [scope], settings).secret
        server.admin_secret = server.keys["admin"]
        yield server
    finally:
        stop_server(server)
        dispose_engines()
        if os.environ.get("SENSORIUM_TEST_KEEP_LOGS"):
            print(server.log.read_text())
        for _ in databases:  # let the PostgreSQL generator drop its database
            pass
