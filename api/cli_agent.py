"""`sensorium agent` (natural-language requests, one or a JSONL file of them) and `sensorium mcp` (stdio server)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli_help import example
from api.cli_output import EXIT_FAILED, fail

if TYPE_CHECKING:
    from agent.router import Router
    from core.settings import Settings

MCP_SCOPES = ("search", "generate")


def register(app: typer.Typer) -> None:
    """Add the ``agent`` and ``mcp`` commands to the CLI."""
    app.command("agent", epilog=example('sensorium agent "find a photo of a lighthouse, or make one"'))(agent)
    app.command("mcp", epilog=example("sensorium mcp --scope search"))(mcp)


def agent(
    request: Annotated[str | None, typer.Argument(help="What to find or make, in plain words.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {plan, steps, assets, jobs, notes} as JSON.")] = False,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Only plan: run no tool.")] = False,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="JSONL of {\"request\": ...} objects ('-' for stdin); prints one JSON line each."),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            max=600,
            help="Seconds to wait for a generation job (default: 0 with a broker; until done in embedded mode).",
        ),
    ] = None,
    generator: Annotated[str | None, typer.Option(help="Generator to use when the request generates.")] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--eval",
            help="With --plan-only --file: the file is labelled (route, modality[, count]); print accuracy and "
            "confusion tables instead of plans.",
        ),
    ] = False,
) -> None:
    """Carry out a natural-language request: search the library, generate, or search and generate if nothing fits.

    Exits 1 when the request could not be served (every step failed), saying why.
    """
    from agent.loop import AgentInputError, failure
    from agent.planner import get_planner
    from agent.tools import MAX_WAIT_S
    from core.settings import get_settings

    if (request is None) == (file is None):
        fail('give a request ("find photos of a red car") or --file requests.jsonl, not both')
    if evaluate and (file is None or not plan_only):
        fail("--eval scores a labelled file: use it with --plan-only --file labelled.jsonl")
    from api.client import current_client

    client = current_client()
    if client is not None and request is not None:
        from api.cli_remote import call

        body = {"request": request, "wait": min(wait or 0.0, 300.0), "plan_only": plan_only}
        response = call(client, "POST", "/v1/agent", body={**body, **({"generator": generator} if generator else {})})
        if as_json:
            typer.echo(json.dumps(response))
        else:
            _print_response(response)
        return
    if client is not None:
        fail("--file runs in embedded mode only; unset SENSORIUM_SERVER_URL (or send the requests one by one)")
    settings = get_settings()
    if evaluate and file is not None:
        _evaluate(file, get_planner(settings))
        return
    if not plan_only:
        _require_encoder(settings)
    # In embedded mode the job runs inside this process, which must stay alive until it ends.
    wait_s = wait if wait is not None else (0.0 if settings.broker_url else MAX_WAIT_S)
    router = get_planner(settings)
    if file is not None:
        errors = _run_file(file, settings, router, plan_only, wait_s, generator)
        raise typer.Exit(1 if errors else 0)
    try:
        response = _run(request, settings, router, plan_only, wait_s, generator)
    except AgentInputError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(response))
    else:
        _print_response(response)
    reason = None if plan_only else failure(response)
    if reason is not None:
        fail(f"the request could not be served: {reason}", EXIT_FAILED)


def _require_encoder(settings: Settings) -> None:
    """Refuse the documented way (exit 2) when the encoder's weights cannot be had, as every command does."""
    from index.encoders import EncoderWeightsUnavailable, get_encoder

    try:
        get_encoder(settings.encoder)
    except EncoderWeightsUnavailable as exc:
        fail(str(exc))


def _run(
    request: object, settings: Settings, router: Router, plan_only: bool, wait_s: float, generator: str | None
) -> dict[str, Any]:
    from agent.loop import run_agent

    return run_agent(request, settings=settings, wait_s=wait_s, plan_only=plan_only, router=router, generator=generator)


def _lines(file: Path) -> Iterator[bytes]:
    if str(file) == "-":
        yield from sys.stdin.buffer
        return
    if not file.is_file():
        fail(f"request file not found: {file}")
    with file.open("rb") as handle:
        yield from handle


def read_requests(lines: Iterable[bytes]) -> Iterator[tuple[object, str | None]]:
    """Yield (request, None) per JSONL line, or (request or None, reason) for a line that cannot be read."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield None, f"line {number}: not a JSON object ({exc})"
            continue
        if not isinstance(data, dict) or "request" not in data:
            yield None, f'line {number}: expected a JSON object with a "request" field'
            continue
        yield data["request"], None


def _run_file(
    file: Path, settings: Settings, router: Router, plan_only: bool, wait_s: float, generator: str | None
) -> int:
    """Print one JSON line per request in file (same order); return how many lines failed."""
    from agent.loop import AgentInputError, failure

    errors = 0
    for request, problem in read_requests(_lines(file)):
        line: dict[str, Any] = {"request": request}
        if problem is None:
            try:
                response = _run(request, settings, router, plan_only, wait_s, generator)
                line.update({"plan": response["plan"]} if plan_only else response)
                problem = None if plan_only else failure(response)
            except AgentInputError as exc:
                problem = str(exc)
        if problem is not None:
            errors += 1
            line["error"] = problem
        typer.echo(json.dumps(line))
    return errors


def _evaluate(file: Path, router: Router) -> None:
    """Plan every labelled request in file and print accuracy and confusion tables."""
    from agent.corpus import CorpusError, parse_examples
    from agent.evaluate import evaluate, render

    raw = b"".join(_lines(file))
    try:
        examples = parse_examples(raw.decode("utf-8").splitlines(), str(file))
    except (UnicodeDecodeError, CorpusError) as exc:
        fail(str(exc))
    if not examples:
        fail(f"{file} holds no labelled requests")
    try:
        report = evaluate((e, router.plan(e.request)) for e in examples)
    except ValueError as exc:
        fail(f"{file}: {exc}")
    typer.echo(render(report))


def _print_response(response: dict[str, Any]) -> None:
    plan = response["plan"]
    count = plan["count"] if plan["count"] is not None else "default"
    typer.echo(f"plan: {plan['route']} {plan['modality']}, count {count}, query {plan['query']!r}")
    for step in response["steps"]:
        arguments = json.dumps(step["arguments"])
        typer.echo(f"  {step['tool']} {arguments} -> {step['result_summary']} ({step['duration_ms']:.0f} ms)")
    for rank, asset in enumerate(response["assets"], 1):
        score = asset.get("score")
        shown = "-" if score is None else f"{score:.3f}"
        typer.echo(f"{rank:>3}  {shown:>6}  {asset['kind']:<5}  {asset['name']}  {asset['asset_id']}")
    for job in response["jobs"]:
        typer.echo(f"job {job['id']}: {job['status']}")
    for note in response["notes"]:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)


class McpScope(StrEnum):
    """What an MCP client may do (an Enum so that help lists the choices)."""

    search = "search"
    generate = "generate"


def mcp(
    scope: Annotated[
        list[McpScope] | None,
        typer.Option("--scope", help="What the MCP client may do (repeatable). Default: both."),
    ] = None,
) -> None:
    """Serve the agent tools (search_assets, generate_media, get_job, get_asset) over MCP on stdin/stdout."""
    from agent.mcp_server import serve_stdio
    from core.settings import get_settings

    serve_stdio(get_settings(), tuple(s.value for s in scope) if scope else MCP_SCOPES)
