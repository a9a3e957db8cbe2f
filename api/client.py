"""Client mode: the CLI calls a running ``sensorium serve`` (which keeps the model resident) instead of loading it.

Chosen by ``--server URL`` or ``SENSORIUM_SERVER_URL`` (key: ``SENSORIUM_API_KEY``). Plain ``urllib`` keeps the
CLI's start-up short; answers are the REST API's JSON, errors its RFC 9457 problem details.
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

_override: str | None = None


class ServerError(Exception):
    """The server refused or failed a request; ``status`` is 0 when it could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """A thin JSON client for the /v1 API."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float = 3600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        raw: tuple[bytes, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer; raise ServerError for a problem."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if raw is not None:
            data, headers["Content-Type"] = raw
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = Request(url, data=data, headers=headers, method=method)
        try:
            with urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - the configured server
                payload = response.read()
        except HTTPError as exc:
            raise ServerError(exc.code, _problem_text(exc.code, exc.read())) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(0, f"cannot reach the server at {self.base_url}: {reason}") from None
        return json.loads(payload) if payload else {}

    def multipart(self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, Path]]) -> dict[str, Any]:
        """POST form ``fields`` and local ``files`` (form field, path) as multipart/form-data."""
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in fields:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for field, file in files:
            mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{file.name}"\r\n'
                f"Content-Type: {mime}\r\n\r\n"
            )
            parts += [head.encode(), file.read_bytes(), b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode())
        return self.call("POST", path, raw=(b"".join(parts), f"multipart/form-data; boundary={boundary}"))


def _problem_text(status: int, body: bytes) -> str:
    try:
        problem = json.loads(body)
    except ValueError:
        return f"server answered {status}: {body[:200].decode(errors='replace')}"
    detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
    errors = problem.get("errors") or []
    extra = "; ".join(f"{e.get('field', '?')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    return f"{detail} ({extra})" if extra else str(detail)


def use_server(url: str | None) -> None:
    """Point this process at a server (``--server``), overriding SENSORIUM_SERVER_URL."""
    global _override
    _override = url


def current_client() -> Client | None:
    """Return the client for the configured server, or None in embedded mode."""
    from core.settings import get_settings

    settings = get_settings()
    url = _override or settings.server_url
    if not url:
        return None
    return Client(url, settings.api_key)
