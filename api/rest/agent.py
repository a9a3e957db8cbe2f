"""POST /v1/agent (a natural-language request, planned and carried out) and GET /v1/agent/tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, ConfigDict, Field

from agent.loop import MAX_REQUEST_CHARS
from agent.plan import Plan
from api.rest.auth import Principal, principal
from api.rest.bodies import parse_json_model, read_limited
from api.rest.jobs import JobOut
from api.rest.openapi import json_schema, operation
from api.rest.problems import ProblemError, problem_responses
from api.rest.state import ApiState
from api.rest.uris import visible_uri

if TYPE_CHECKING:
    from agent.loop import StartedAgent

JSON = "application/json"
MAX_WAIT_S = 300.0


class AgentBody(BaseModel):
    """A request in plain language, e.g. "find a photo of a lighthouse, or make one"."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(strict=True, min_length=1, max_length=MAX_REQUEST_CHARS, description="What to find or make.")
    wait: float = Field(default=0.0, ge=0, le=MAX_WAIT_S, description="Seconds to wait for a generation job to finish.")
    plan_only: bool = Field(default=False, description="Return the plan without running any tool.")
    generator: str | None = Field(
        default=None, min_length=1, max_length=64, description="Generator to use if it generates (GET /v1/generators)."
    )


class Step(BaseModel):
    """One tool call the agent made."""

    tool: str
    arguments: dict[str, Any]
    result_summary: str
    duration_ms: float


class AgentResponse(BaseModel):
    """The plan, each step taken, and the resulting assets and jobs."""

    plan: Plan
    steps: list[Step]
    assets: list[dict[str, Any]] = Field(
        description="Search hits (SearchHit shape), or the generated assets once their job has succeeded."
    )
    jobs: list[JobOut]
    notes: list[str] = Field(description="Why the agent did what it did, and anything it could not do.")


class ToolList(BaseModel):
    """The agent tools as OpenAI function-calling definitions (pass them as `tools=`)."""

    tools: list[dict[str, Any]]


def _start(state: ApiState, who: Principal, body: AgentBody, base_url: str) -> StartedAgent:
    from agent.loop import AgentInputError, start_agent

    try:
        return start_agent(
            body.request,
            settings=state.settings,
            scopes=who.scopes,
            plan_only=body.plan_only,
            generator=body.generator,
            owner_key_id=who.key_id,
            url_for=lambda asset_id, what: state.asset_url(base_url, asset_id, what),
        )
    except AgentInputError as exc:
        raise ProblemError("validation-error", str(exc), errors=[("request", str(exc))]) from None


def _finish(state: ApiState, started: StartedAgent, waited: bool) -> dict[str, Any]:
    """Finish the run with its generation job re-read if it was waited for."""
    from agent.loop import finish_agent
    from core.jobs import get_job, job_to_dict

    job = started.job
    if job is not None and waited:
        found = get_job(job["id"], state.settings)
        job = job_to_dict(found) if found is not None else job
    return finish_agent(started, job)


class AgentController(Controller):
    """Natural-language requests for agents and applications."""

    path = "/agent"
    tags = ["agent"]

    @post(
        "/",
        status_code=200,
        summary="Carry out a natural-language request",
        opt={"scope": "search", "accepts": (JSON,)},
        operation_class=operation(request_body={JSON: json_schema(AgentBody)}),
        responses={
            202: ResponseSpec(AgentResponse, description="A generation job it started is still running"),
            **problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
        },
    )
    async def run(self, request: Request[Any, Any, Any]) -> Response[AgentResponse]:
        """Plan the request and search, generate, or search and generate if nothing fits.

        Needs `search`; generating also needs `generate` (without it the response holds search results and a
        note). 202 while a generation job it started is still running (follow `jobs[].url`), else 200.
        """
        state: ApiState = request.app.state.api
        body = parse_json_model(await read_limited(request, state.settings.api.max_json_bytes), AgentBody)
        who = principal(request)
        wait_s = 0.0 if body.plan_only else body.wait
        async with state.waiter.slot(who.key_id, wait_s):  # over the key's wait cap: 429 before any tool runs
            started = await anyio.to_thread.run_sync(_start, state, who, body, str(request.base_url))
            job = started.job
            waits = job is not None and wait_s > 0 and job["status"] in ("queued", "running")
            if job is not None and waits:
                await state.waiter.until_ended(str(job["id"]), wait_s)
        result = await anyio.to_thread.run_sync(_finish, state, started, waits)
        for asset in result["assets"]:
            asset["uri"] = visible_uri(asset.get("uri"), who.is_admin, state.settings.ingest.allowed_roots)
        out = AgentResponse.model_validate(
            {**result, "jobs": [{**job, "url": f"/v1/jobs/{job['id']}"} for job in result["jobs"]]}
        )
        running = [job.url for job in out.jobs if job.status in ("queued", "running")]
        return Response(out, status_code=202 if running else 200, headers={"Location": running[0]} if running else {})

    @get(
        "/tools",
        summary="Agent tools as OpenAI function definitions",
        opt={"scope": "search"},
        responses=problem_responses(401, 403, 429),
    )
    async def tools(self) -> ToolList:
        """Return search_assets, generate_media, get_job and get_asset as OpenAI function-calling definitions."""
        from agent.tools import openai_tools

        return ToolList(tools=openai_tools())
