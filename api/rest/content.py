"""Streaming file responses with single-range HTTP Range support (RFC 9110 section 14)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import BinaryIO
from urllib.parse import quote

import anyio.to_thread
from litestar.response import Stream

from api.rest.problems import ProblemError

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_RANGE_DIGITS = 19  # 10**19 bytes is beyond any file; longer numbers are not even worth int()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive (start, end) asked for, None to send everything; raise 416 when unsatisfiable.

    Multiple ranges and malformed headers are ignored (a full 200 response is always allowed).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if max(len(first), len(last)) > _MAX_RANGE_DIGITS:
        raise ProblemError(
            "range-not-satisfiable",
            f"range positions have at most {_MAX_RANGE_DIGITS} digits; the content is {size} bytes long",
            headers={"Content-Range": f"bytes */{size}"},
        )
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # syntactically invalid: ignore it
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ProblemError:
    return ProblemError(
        "range-not-satisfiable", f"the content is {size} bytes long", headers={"Content-Range": f"bytes */{size}"}
    )


async def _chunks(handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    """Read from the descriptor that was opened and checked, never from the path again."""
    try:
        offset, remaining = start, length
        while remaining > 0:
            data = await anyio.to_thread.run_sync(os.pread, handle.fileno(), min(CHUNK, remaining), offset)
            if not data:
                break  # the file shrank under us; the client sees a short body rather than a hang
            offset += len(data)
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def file_response(
    handle: BinaryIO,
    size: int,
    media_type: str,
    *,
    filename: str,
    range_header: str | None,
    etag: str | None = None,
) -> Stream:
    """Return a streaming response reading ``handle`` (closed when done): 206 for a satisfiable range, else 200."""
    try:
        wanted = parse_range(range_header, size)
    except ProblemError:
        handle.close()
        raise
    start, end = wanted if wanted is not None else (0, size - 1)
    length = max(0, end - start + 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename, safe='')}",
        # User-supplied files are served from this origin: never let a browser run them as a page.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    if etag:
        headers["ETag"] = f'"{etag}"'
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Stream(
        _chunks(handle, start, length),
        status_code=206 if wanted is not None else 200,
        media_type=media_type,
        headers=headers,
    )
