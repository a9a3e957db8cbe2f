"""Log lines as JSON objects tagged with the request or job they belong to (ids held in context variables)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

LogFormat = Literal["json", "text"]
# This project's loggers: module names (core.jobs.runner, index.vector.live, ...) and the API's sensorium.* ones.
PROJECT_LOGGERS = ("sensorium", "core", "index", "generators", "agent", "api")

_request_id: ContextVar[str | None] = ContextVar("sensorium_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("sensorium_job_id", default=None)


@contextmanager
def bind_request(request_id: str) -> Iterator[None]:
    """Tag records logged inside the block, and in threads it hands work to via anyio, with ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


@contextmanager
def bind_job(job_id: str) -> Iterator[None]:
    """Tag records logged inside the block with ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def bound_ids() -> dict[str, str]:
    """Return the request and job ids bound in this context (only those set)."""
    ids = {"request_id": _request_id.get(), "job_id": _job_id.get()}
    return {key: value for key, value in ids.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (Unix seconds), level, logger, message, bound ids, exc_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single-line JSON object."""
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **bound_ids(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class AccessTextFormatter(logging.Formatter):
    """An access line (a JSON object) as text: time, method, path, status, bytes, duration, key, client, request id."""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``2026-01-01 12:00:00,000 GET /v1/search 200 512 B 12.3 ms key=... client=... request_id=...``."""
        message = record.getMessage()
        try:
            line = json.loads(message)
        except ValueError:
            return message
        if not isinstance(line, dict):
            return message
        field = {key: "-" if value is None else value for key, value in line.items()}.get
        return (
            f"{self.formatTime(record)} {field('method', '-')} {field('path', '-')} {field('status', '-')} "
            f"{field('bytes', '-')} B {field('duration_ms', '-')} ms key={field('key_id', '-')} "
            f"client={field('client', '-')} request_id={field('request_id', '-')}"
        )


def logging_config(log_format: LogFormat, level: int) -> dict[str, Any]:
    """Return a ``logging.config.dictConfig`` for a server or worker process: everything to stderr.

    The root logger keeps ``level``; this project's loggers and uvicorn's own log at INFO (or ``level`` if lower).
    ``sensorium.access`` lines are JSON already: written as they are in JSON format, rendered as text in text format.
    """
    project = min(level, logging.INFO)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "line": {"format": "%(message)s"},
            "access_text": {"()": AccessTextFormatter},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": log_format, "stream": "ext://sys.stderr"},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "line" if log_format == "json" else "access_text",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{name: {"level": project} for name in (*PROJECT_LOGGERS, "uvicorn.error")},
            "sensorium.access": {"handlers": ["access"], "level": logging.INFO, "propagate": False},
        },
    }
