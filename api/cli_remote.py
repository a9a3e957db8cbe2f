"""Client-mode bodies of the CLI commands: the same arguments, sent to a running server, answers in the same shapes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NoReturn

from api.cli_output import EXIT_FAILED, EXIT_STILL_RUNNING, fail, note, print_ingest_summary
from api.client import Client, ServerError

_POLL_S = 30.0  # the server blocks up to this long per poll (its limit is 60 s)
_ENDED = ("succeeded", "failed", "canceled")


def refused(exc: ServerError) -> NoReturn:
    """Exit like embedded mode does: 2 for a refused request, 1 for a server-side failure or no server."""
    fail(str(exc), 2 if 400 <= exc.status < 500 else EXIT_FAILED)


def call(client: Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Return the server's answer, or exit with its problem as the error line."""
    try:
        return client.call(method, path, **kwargs)
    except ServerError as exc:
        refused(exc)


def remote_search(
    client: Client,
    query: dict[str, Any],
    mode: str,
    filters: dict[str, list[str]],
    min_score: float | None,
    k: int,
    offset: int,
) -> dict[str, Any]:
    """Return {results, warnings, more, empty_library} for one page, searched by the server."""
    for name, values in (("kind", filters["kinds"]), ("collection", filters["collections"])):
        if len(values) > 1:
            fail(f"a server search takes one --{name}; got {', '.join(values)}")
    body: dict[str, Any] = {
        "mode": mode,
        "kind": next(iter(filters["kinds"]), None),
        "collection": next(iter(filters["collections"]), None),
        "tags": filters["tags"],
        "min_score": min_score,
        "limit": min(k + 1, 1000),  # one more than shown tells whether another page exists
        "offset": offset,
    }
    body = {key: value for key, value in body.items() if value is not None}
    try:
        if query["image"] is not None or query["audio"] is not None:
            field = "image" if query["image"] is not None else "audio"
            fields = [(key, str(value)) for key, value in body.items() if key != "tags"]
            fields += [("tags", tag) for tag in body["tags"]]
            answer = client.multipart("/v1/search", fields, [(field, Path(query[field]))])
        else:
            body.update({key: query[key] for key in ("text", "asset_id") if query[key] is not None})
            answer = client.call("POST", "/v1/search", body=body)
    except ServerError as exc:
        refused(exc)
    results = answer.get("results", [])
    empty = not results and offset == 0 and not call(client, "GET", "/v1/assets", query={"limit": 1}).get("items")
    return {
        "results": results[:k],
        "warnings": answer.get("warnings", []),
        "more": len(results) > k,
        "empty_library": empty,
    }


def follow_job(client: Client, job: dict[str, Any], timeout_s: float = 24 * 3600) -> dict[str, Any]:
    """Poll the server until the job ends (or ``timeout_s`` passes); return its last state."""
    deadline = time.monotonic() + timeout_s
    while job["status"] not in _ENDED and time.monotonic() < deadline:
        wait = max(0.0, min(_POLL_S, deadline - time.monotonic()))
        job = call(client, "GET", f"/v1/jobs/{job['id']}", query={"wait": f"{wait:.1f}"})
    return job


def exit_for(job: dict[str, Any]) -> None:
    """Exit 1 for a failed or canceled job, 3 for one still running (as embedded mode does)."""
    import typer

    if job["status"] in ("failed", "canceled"):
        raise typer.Exit(EXIT_FAILED)
    if job["status"] not in _ENDED:
        note(f"job {job['id']} is still {job['status']}; follow it with `sensorium jobs show {job['id']}`")
        raise typer.Exit(EXIT_STILL_RUNNING)


def remote_ingest(
    client: Client,
    paths: list[Path],
    manifest: Path | None,
    collection: str,
    tags: list[str],
    upload: bool,
    follow: bool,
    as_json: bool,
) -> None:
    """Ingest server-side paths (or upload local files with ``upload``) and print the summary as embedded mode does."""
    import json

    import typer

    started = time.perf_counter()
    if upload:
        _upload(client, paths, collection, tags, started, as_json)
        return
    body: dict[str, Any] = {"paths": [str(p) for p in paths], "collection": collection, "tags": tags}
    if manifest is not None:
        body["manifest"] = str(manifest)
    job = call(client, "POST", "/v1/ingest", body=body)
    if not follow:
        typer.echo(json.dumps(job) if as_json else f"job {job['id']} ({job['kind']}) {job['status']}")
        return
    job = follow_job(client, job)
    if job["status"] != "succeeded":
        note(f"job {job['id']} {job['status']}" + (f": {job['error']}" if job.get("error") else ""))
        exit_for(job)
    result = job.get("result") or {}
    print_ingest_summary(_summary(result, time.perf_counter() - started), as_json)


def _summary(result: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    failures = list(result.get("failures") or [])
    return {
        "indexed": int(result.get("indexed") or 0),
        "skipped": int(result.get("skipped") or 0),
        "failed": int(result.get("failed") or len(failures)),
        "elapsed_s": round(elapsed_s, 3),
        "failures": failures,
    }


def _upload(client: Client, paths: list[Path], collection: str, tags: list[str], started: float, as_json: bool) -> None:
    from index.ingest.discover import Candidate, discover

    found = list(discover(paths, None, collection, tags))
    files = [entry.path for entry in found if isinstance(entry, Candidate)]
    failures = [{"path": entry.path, "reason": entry.reason} for entry in found if not isinstance(entry, Candidate)]
    indexed = skipped = 0
    for start in range(0, len(files), 16):  # a few files per request keeps each body small
        fields = [("collection", collection), *(("tags", tag) for tag in tags)]
        try:
            answer = client.multipart("/v1/assets", fields, [("files", path) for path in files[start : start + 16]])
        except ServerError as exc:
            if exc.status == 0:
                refused(exc)
            failures += [{"path": str(path), "reason": str(exc)} for path in files[start : start + 16]]
            continue
        items = answer.get("items", [])
        skipped += sum(item.get("status") == "existing" for item in items)
        indexed += sum(item.get("status") == "created" for item in items)
        job = answer.get("job")
        if job:
            job = follow_job(client, job)
            result = job.get("result") or {}
            indexed += int(result.get("indexed") or 0)
            skipped += int(result.get("skipped") or 0)
            failures += list(result.get("failures") or [])
    summary = {
        "indexed": indexed,
        "skipped": skipped,
        "failed": len(failures),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "failures": failures,
    }
    for failure in [] if as_json else failures:
        note(f"failed: {failure['path']}: {failure['reason']}")
    print_ingest_summary(summary, as_json)
