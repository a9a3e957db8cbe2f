"""Request bodies read by hand where Litestar's parser does not fit: streamed multipart uploads and JSON-or-form.

Uploads are streamed straight to temp files with the per-file limit enforced as bytes arrive, so an oversized
file gets 413 after ``limit`` bytes, not after the whole body, and nothing large is ever held in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from api.rest.problems import ProblemError
from api.rest.schemas import nul_field

if TYPE_CHECKING:
    from litestar import Request

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 64


@dataclass
class UploadedFile:
    """One file part, already on disk."""

    field: str
    filename: str
    content_type: str | None
    path: Path
    size: int


@dataclass
class MultipartForm:
    """The parsed form: text fields (repeatable) and files in a private temp folder."""

    folder: Path
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def cleanup(self) -> None:
        """Delete the temp folder and every file still in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


def safe_filename(name: str, where: str) -> str:
    """Return ``name`` if it is a plain file name; refuse paths, traversal and control characters."""
    if (
        not name
        or len(name) > 255
        or name in (".", "..")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise ProblemError(
            "validation-error",
            f"file name {name!r} is not a plain file name",
            errors=[(where, "must be a plain file name (no folders, '..' or control characters)")],
        )
    return name


def media_type(request: Request[Any, Any, Any]) -> str:
    """Return the request's lower-cased media type without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited(request: Request[Any, Any, Any], limit: int) -> bytes:
    """Return the whole body, refusing with 413 as soon as it passes ``limit`` bytes."""
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit:
        raise ProblemError("payload-too-large", f"the body may be at most {limit:,} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ProblemError("payload-too-large", f"the body may be at most {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def validation_problem(exc: ValidationError, prefix: str = "") -> ProblemError:
    """Return a 422 problem naming every invalid field of a pydantic error."""
    errors = [(prefix + (".".join(str(p) for p in err["loc"]) or "body"), err["msg"]) for err in exc.errors()]
    return ProblemError("validation-error", "; ".join(f"{f}: {m}" for f, m in errors), errors=errors)


def parse_json_model(raw: bytes, model: type[ModelT]) -> ModelT:
    """Decode a JSON body (400 when malformed) and validate it (422 naming the fields)."""
    try:
        # The stdlib decoder accepts NaN/Infinity literals, so they reach validation and get a 422 naming
        # the field instead of a generic parse error.
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProblemError("malformed-json", f"the body is not valid JSON: {exc}") from None
    field = nul_field(data)
    if field is not None:
        raise ProblemError("validation-error", f"{field} must not contain NUL characters", errors=[(field, "NUL")])
    try:
        # Strict: JSON carries types, so "10" is not an integer and 0 is not a boolean (form fields stay lax).
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def form_model(form: MultipartForm, model: type[ModelT], lists: frozenset[str] = frozenset()) -> ModelT:
    """Validate the text fields of a form against ``model``; names in ``lists`` keep every value."""
    data: dict[str, Any] = {name: values if name in lists else values[-1] for name, values in form.fields.items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def read_multipart(
    request: Request[Any, Any, Any],
    *,
    tmp_root: Path,
    max_file_bytes: int,
    file_fields: frozenset[str],
    max_files: int,
) -> MultipartForm:
    """Stream a multipart/form-data body: files to temp files (each at most ``max_file_bytes``), fields to text."""
    from multipart import MultipartError, MultipartSegment, ParserLimitReached, PushMultipartParser

    boundary = _boundary(request)
    tmp_root.mkdir(parents=True, exist_ok=True)
    form = MultipartForm(Path(tempfile.mkdtemp(prefix="upload-", dir=tmp_root)))
    segment: MultipartSegment | None = None
    sink: Any = None  # an open temp file, or a bytearray for a text field
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_PARTS, strict=False) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment = event
                        sink = _open_part(form, event, file_fields, max_files)
                    elif event is not None and segment is not None:
                        _write_part(sink, segment, event, max_file_bytes)
                    elif segment is not None:
                        _finish_part(form, segment, sink)
                        segment, sink = None, None
                if parser.closed:
                    break
    except ParserLimitReached:
        form.cleanup()
        raise ProblemError(
            "validation-error", f"at most {MAX_PARTS} form parts", errors=[("body", f"over {MAX_PARTS} parts")]
        ) from None
    except MultipartError as exc:
        form.cleanup()
        raise ProblemError("malformed-multipart", f"the multipart body is malformed: {exc}") from None
    except BaseException:
        if sink is not None and not isinstance(sink, bytearray):
            sink.close()
        form.cleanup()
        raise
    return form


def _boundary(request: Request[Any, Any, Any]) -> str:
    _, options = request.content_type
    boundary = options.get("boundary")
    if not boundary:
        raise ProblemError("malformed-multipart", "the Content-Type header has no multipart boundary")
    return boundary


def _open_part(form: MultipartForm, segment: Any, file_fields: frozenset[str], max_files: int) -> Any:
    name = segment.name or ""
    if segment.filename is None:
        return bytearray()
    if name not in file_fields:
        raise ProblemError(
            "validation-error",
            f"unexpected file in field {name!r}",
            errors=[(name or "file", f"files go in {', '.join(sorted(file_fields))}")],
        )
    if sum(1 for f in form.files if f.field == name) + 1 > max_files:
        raise ProblemError("payload-too-large", f"at most {max_files} files per request")
    safe_filename(segment.filename, f"{name}.filename")
    fd, path = tempfile.mkstemp(dir=form.folder, prefix="part-")
    os.close(fd)
    return open(path, "wb")  # noqa: SIM115 - closed in _finish_part or on error


def _write_part(sink: Any, segment: Any, data: bytes, max_file_bytes: int) -> None:
    if isinstance(sink, bytearray):
        if len(sink) + len(data) > MAX_FIELD_BYTES:
            raise ProblemError("payload-too-large", f"form field {segment.name!r} is over {MAX_FIELD_BYTES:,} bytes")
        sink.extend(data)
        return
    if segment.bytes_received > max_file_bytes:
        raise ProblemError(
            "payload-too-large", f"file {segment.filename!r} is over the limit of {max_file_bytes:,} bytes"
        )
    sink.write(data)


def _finish_part(form: MultipartForm, segment: Any, sink: Any) -> None:
    name = segment.name or ""
    if isinstance(sink, bytearray):
        try:
            text = sink.decode(segment.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise ProblemError(
                "validation-error", f"form field {name!r} is not text", errors=[(name, "must be UTF-8 text")]
            ) from None
        form.fields.setdefault(name, []).append(text)
        return
    sink.close()
    form.files.append(UploadedFile(name, segment.filename, segment.content_type, Path(sink.name), segment.size))
