"""Callback addresses: IPv6 forms that embed a private IPv4 address are refused, and a delivery connects to the
address that was checked (the name is not resolved again, so DNS rebinding cannot redirect it)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.callbacks import InvalidCallbackUrl, check_callback_url, post_once, validate_callback_url
from core.settings import JobSettings, Settings

SECRET = "callback-test-secret"


@pytest.fixture
def public_only(tmp_path: Any) -> Settings:
    """Settings that sign callbacks and refuse private addresses (the default)."""
    return Settings(data_dir=tmp_path, jobs=JobSettings(callback_secret=SECRET))


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254 (cloud metadata)
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[64:ff9b:1::a00:1]",  # local-use NAT64
        "[::127.0.0.1]",  # IPv4-compatible
        "[::a00:1]",  # IPv4-compatible 10.0.0.1
        "[::ffff:0:7f00:1]",  # IPv4-translated (SIIT)
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:a9fe:a9fe]",  # IPv4-mapped metadata address
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2002:c0a8:101::1]",  # 6to4 of 192.168.1.1
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
        "[::1]",
        "[fe80::1]",
        "[fc00::1]",
        "127.0.0.1",
        "169.254.169.254",
    ],
)
def test_addresses_that_embed_private_ipv4_are_refused(public_only: Settings, host: str) -> None:
    with pytest.raises(InvalidCallbackUrl, match="private or loopback"):
        validate_callback_url(f"http://{host}/hook", public_only)


@pytest.mark.parametrize("host", ["[64:ff9b::808:808]", "[2002:808:808::]", "[::ffff:8.8.8.8]", "[2606:4700::1111]"])
def test_ipv6_forms_of_public_addresses_are_accepted(public_only: Settings, host: str) -> None:
    assert validate_callback_url(f"https://{host}:8443/hook", public_only) == f"https://{host}:8443/hook"


def test_credentials_in_the_url_are_refused(public_only: Settings) -> None:
    with pytest.raises(InvalidCallbackUrl, match="user name"):
        validate_callback_url("https://user:pw@93.184.215.14/hook", public_only)


class _Receiver(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.hosts.append(str(self.headers.get("Host")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver_port() -> Iterator[int]:
    """A local receiver that records each request's Host header; yields its port."""
    _Receiver.hosts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def test_a_delivery_connects_to_the_checked_address_and_keeps_the_host(
    tmp_path: Any, receiver_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebinding name: the first lookup (the check) gives the receiver's address, every later one another
    # address where nothing listens. DNS cannot be served here, so the resolver is replaced for this one name.
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings = Settings(data_dir=tmp_path, jobs=JobSettings(callback_secret=SECRET, allow_private_callbacks=True))
    url = f"http://rebind.example:{receiver_port}/hook?x=1"
    assert check_callback_url(url, settings).pinned_url() == f"http://127.0.0.1:{receiver_port}/hook?x=1"
    lookups.clear()

    sent = post_once(url, {"id": "j1", "status": "succeeded"}, settings)
    assert sent.delivered, sent.problem
    assert lookups == ["rebind.example"]  # resolved once, for the check; the connection used that address
    assert _Receiver.hosts == [f"rebind.example:{receiver_port}"]
