"""Webhook deliveries survive their process (SQLite and PostgreSQL): a callback being retried when its process is
SIGKILLed is delivered, signed, by the next process that runs a reaper."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from core.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from core.db.engine import read_session
from core.db.models import WebhookDelivery
from core.jobs import HANDLERS, start_embedded_executor, stop_executors
from core.settings import JobSettings, Settings
from tests import fanout_handlers
from tests.conftest import env_for
from tests.jobs_helpers import wait_until

SECRET = "outbox-test-secret"
ROOT = Path(__file__).resolve().parents[2]


class _Receiver(BaseHTTPRequestHandler):
    """Answers 503 while ``failing`` is set, 200 afterwards; records every call."""

    failing = True
    calls: list[tuple[int, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 503 if _Receiver.failing else 200
        _Receiver.calls.append((status, dict(self.headers), body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    """A local callback receiver; yields its URL."""
    _Receiver.failing, _Receiver.calls = True, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def _deliveries(settings: Settings) -> list[WebhookDelivery]:
    with read_session(settings) as session:
        return list(session.scalars(select(WebhookDelivery)))


def test_a_delivery_being_retried_when_its_process_is_killed_is_sent_after_restart(
    settings: Settings, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = JobSettings(callback_secret=SECRET, allow_private_callbacks=True, lease_s=2.0, heartbeat_s=0.5)
    settings = settings.model_copy(update={"jobs": jobs})
    env = {
        **env_for(settings),
        "SENSORIUM_JOBS__CALLBACK_SECRET": SECRET,
        "SENSORIUM_JOBS__ALLOW_PRIVATE_CALLBACKS": "true",
        "SENSORIUM_JOBS__LEASE_S": "2",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_process", receiver], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        job_id, status = child.stdout.readline().split()
        assert status == "succeeded"
        # The receiver failed the first attempt; the process now waits to retry it.
        wait_until(lambda: _Receiver.calls, 30, "the first delivery attempt")
        wait_until(lambda: [d for d in _deliveries(settings) if d.attempts >= 1 and d.claimed_until is None], 30)
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    (left,) = _deliveries(settings)
    assert (left.job_id, left.status) == (job_id, "pending")
    assert {call[0] for call in _Receiver.calls} == {503}

    # The receiver is back; a new process (this one) starts its executor, whose reaper finds the delivery.
    _Receiver.failing = False
    for kind, target in fanout_handlers.HANDLERS.items():
        monkeypatch.setitem(HANDLERS, kind, target)
    start_embedded_executor(settings)
    try:
        wait_until(lambda: [d for d in _deliveries(settings) if d.status == "delivered"], 60, "the delivery")
    finally:
        stop_executors()
    last, headers, body = _Receiver.calls[-1]
    assert last == 200 and [c[0] for c in _Receiver.calls].count(200) == 1
    expected = hmac.new(SECRET.encode(), headers[TIMESTAMP_HEADER].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    payload = json.loads(body)
    assert (payload["id"], payload["status"], payload["result"]["processed"]) == (job_id, "succeeded", 1)
    (delivered,) = _deliveries(settings)
    assert delivered.attempts == len(_Receiver.calls) and delivered.delivered_at is not None
