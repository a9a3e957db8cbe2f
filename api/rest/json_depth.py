"""A nesting-depth limit for JSON request bodies, checked before any parser sees them.

Python's and msgspec's JSON decoders recurse per nesting level: about 2 KB of ``[[[[...]]]]`` raised RecursionError
(a 500) on every JSON route. The body of a JSON request is read once here, measured, and handed on unchanged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from api.rest.problems import ProblemError

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth_over(raw: bytes, limit: int) -> bool:
    """Return whether the JSON text ``raw`` nests arrays and objects deeper than ``limit`` levels."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # cannot nest deeper than it has brackets
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):  # brackets inside strings do not nest
        if match[0] in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


class JsonDepthLimit:
    """ASGI middleware: a JSON body nested deeper than ``max_depth`` is refused with 400 ``malformed-json``.

    Bodies larger than ``max_bytes`` pass through unread: the routes refuse those as too large anyway.
    """

    def __init__(self, app: ASGIApp, max_depth: int, max_bytes: int) -> None:
        self.app = app
        self.max_depth = max_depth
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that checks the body's depth on its first call."""
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        first = True

        async def checked_receive() -> ReceiveMessage:
            nonlocal first
            if not first:
                return await receive()
            first = False
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = bool(message.get("more_body", False))
                if not more or size > self.max_bytes:
                    break
            body = b"".join(chunks)
            if not more and json_depth_over(body, self.max_depth):
                raise ProblemError(
                    "malformed-json",
                    f"JSON body nests deeper than {self.max_depth} levels (SENSORIUM_API__MAX_JSON_DEPTH)",
                )
            return {"type": "http.request", "body": body, "more_body": more}

        await self.app(scope, checked_receive, send)
