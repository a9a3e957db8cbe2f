"""Job handlers that exercise core/jobs/fanout.py without media: a parent that fans out, children that may fail.

The parent kind merges its children's results with ingest's hook (its children's params have the same items)."""

from __future__ import annotations

import time
from typing import Any

from core.jobs import JobCanceled, JobContext, JobFailed, RetryableJobError, fan_out, register_merge
from index.tasks import merge_ingest_results

PARENT_KIND = "test_fan"
CHILD_KIND = "test_fan_child"
HANDLERS = {PARENT_KIND: "tests.fanout_handlers:run_parent", CHILD_KIND: "tests.fanout_handlers:run_child"}
register_merge(PARENT_KIND, merge_ingest_results)


def run_parent(ctx: JobContext) -> dict[str, Any]:
    """Fan out one child per entry of ``params["children"]`` (each a list of paths)."""
    children = ({"items": [{"path": p} for p in paths]} for paths in ctx.params["children"])
    own: dict[str, Any] = {"parent_part": 1}
    fan_out(ctx, CHILD_KIND, children, queue="ingest", result=own)
    return own


def run_child(ctx: JobContext) -> dict[str, Any]:
    """Count the child's items; a path starting with ``bad`` makes every attempt fail, ``hold`` waits for a cancel."""
    paths = [item["path"] for item in ctx.params["items"]]
    if any(path.startswith("hold") for path in paths):
        deadline = time.monotonic() + 60
        while not ctx.should_cancel():
            if time.monotonic() > deadline:
                raise JobFailed("held for 60 s and never canceled")
            time.sleep(0.02)
        raise JobCanceled(result={"processed": 0})
    if any(path.startswith("bad") for path in paths):
        raise RetryableJobError(f"cannot process {paths[0]}")
    return {"processed": len(paths), "paths_seen": paths}
