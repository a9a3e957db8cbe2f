"""JSON log lines: bound request and job ids, exceptions as text, and the server/worker logging config."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from core.logs import JsonFormatter, bind_job, bind_request

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """Yield a logger whose records are written to a buffer by a JsonFormatter handler."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_lines_carry_the_ids_bound_around_them(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    logger.info("before")
    with bind_request("req-1"):
        logger.warning("in %s", "request")
        with bind_job("job-9"):
            logger.info("in job")
        logger.info("job done")
    logger.info("after")
    got = lines(buffer)
    assert [line["message"] for line in got] == ["before", "in request", "in job", "job done", "after"]
    assert [(line.get("request_id"), line.get("job_id")) for line in got] == [
        (None, None),
        ("req-1", None),
        ("req-1", "job-9"),
        ("req-1", None),
        (None, None),
    ]
    assert got[1]["level"] == "WARNING" and got[1]["logger"] == "tests.logs"
    assert isinstance(got[0]["ts"], float) and abs(got[0]["ts"] - got[-1]["ts"]) < 60


def test_one_line_per_record_with_the_traceback_as_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        with bind_job("job-1"):
            logger.exception("failed on «%s»\nsecond line", "ünïcode")
    (line,) = lines(buffer)
    assert line["message"] == "failed on «ünïcode»\nsecond line" and line["job_id"] == "job-1"
    assert isinstance(line["exc_info"], str)
    assert line["exc_info"].startswith("Traceback") and "ValueError: bad" in line["exc_info"]


def test_ids_follow_work_into_anyio_threads_and_stay_in_their_own_thread(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured

    async def request() -> None:
        with bind_request("req-async"):
            await anyio.to_thread.run_sync(logger.info, "in a worker thread")

    anyio.run(request)
    barrier = threading.Barrier(2)

    def job(job_id: str) -> None:
        with bind_job(job_id):
            barrier.wait()  # both ids are bound at once
            logger.info(job_id)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("job-a", "job-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = lines(buffer)
    assert got[0]["request_id"] == "req-async"
    assert sorted((line["message"], line["job_id"]) for line in got[1:]) == [("job-a", "job-a"), ("job-b", "job-b")]
    assert all("request_id" not in line for line in got[1:])


_EMIT = """
import logging
from logging.config import dictConfig
from core.logs import bind_request, logging_config
dictConfig(logging_config({fmt!r}, logging.ERROR))
with bind_request("r-7"):
    logging.getLogger("core.job_runner").info("project info")
    logging.getLogger("some.library").info("library info")
    logging.getLogger("some.library").error("library error")
    logging.getLogger("sensorium.access").info('{{"event":"request","status":200}}')
"""


def _emit(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _EMIT.format(fmt=fmt)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_server_config_logs_json_lines_with_project_info_and_library_errors() -> None:
    project, library, access = _emit("json")
    assert json.loads(access) == {"event": "request", "status": 200}  # written as it is
    first, second = json.loads(project), json.loads(library)
    assert (first["logger"], first["level"], first["message"]) == ("core.job_runner", "INFO", "project info")
    assert (second["logger"], second["level"]) == ("some.library", "ERROR")  # library INFO stays below the root level
    assert first["request_id"] == second["request_id"] == "r-7"


def test_text_config_logs_plain_lines() -> None:
    project, library, access = _emit("text")
    assert project.endswith("INFO core.job_runner: project info")
    assert library.endswith("ERROR some.library: library error")
    assert not access.startswith("{") and " 200 " in access  # access lines follow LOG_FORMAT=text too
