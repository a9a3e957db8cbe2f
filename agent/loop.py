"""The agent loop: a request becomes a plan, the plan runs through the typed tools, and every step is reported."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.plan import Plan
from agent.router import Router
from agent.tools import (
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    MAX_WAIT_S,
    GenModality,
    ToolContext,
    ToolError,
    UrlFor,
    call_tool,
    generator_for,
)
from core.settings import Settings
from generators.params import MAX_PROMPT_CHARS
from generators.registry import AUDIO_TASKS, IMAGE_TASKS, GeneratorSpec
from index.offline import uses_random_weights

MAX_REQUEST_CHARS = 10_000
DEFAULT_SCOPES = ("search", "generate")
ERROR_SUMMARY = "error ("  # how a step that failed starts its result_summary
# Control characters and lone surrogates: not text, and PostgreSQL refuses NUL in stored job parameters.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class AgentInputError(ValueError):
    """The request itself is unusable (not text, empty, too long); the message says how to fix it."""


def clean_request(value: object) -> str:
    """Return the request as clean text, or raise AgentInputError saying what is wrong with it."""
    if not isinstance(value, str):
        raise AgentInputError(f"request must be text (a string), not {type(value).__name__}")
    text = _NOT_TEXT.sub(" ", value).strip()
    if not text:
        raise AgentInputError("request is empty: say what to find or generate, e.g. 'find photos of a red car'")
    if len(text) > MAX_REQUEST_CHARS:
        raise AgentInputError(
            f"request is {len(text):,} characters; at most {MAX_REQUEST_CHARS:,}: "
            "send what to find or make, not a whole document"
        )
    if not any(c.isalnum() for c in text):
        raise AgentInputError("request has no words: say what to find or generate, e.g. 'find photos of a red car'")
    return text


@dataclass
class _Run:
    """One execution: the caller's context and what happened so far."""

    ctx: ToolContext
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """Run one tool, record the step, and return its result (None when the tool refused)."""
        started = time.perf_counter()
        try:
            result: dict[str, Any] | None = call_tool(tool, arguments, self.ctx)
            summary = _summary(tool, result or {})
        except ToolError as exc:
            result, summary = None, f"{ERROR_SUMMARY}{exc.code}): {exc}"
            self.notes.append(f"{tool} could not run: {exc}")
        self.steps.append(
            {
                "tool": tool,
                "arguments": arguments,
                "result_summary": summary,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        return result


def _summary(tool: str, result: dict[str, Any]) -> str:
    """One line saying what a tool returned."""
    if tool == "search_assets":
        results = result.get("results", [])
        best = _best_score(results)
        shown = f", best score {best:.3f}" if best is not None else ""
        return f"{len(results)} result{'s' if len(results) != 1 else ''}{shown}"
    if tool == "generate_media":
        job = result.get("job", {})
        return f"job {job.get('id')} {job.get('status')}"
    asset = result.get("asset", {})
    return f"{asset.get('kind')} asset {asset.get('asset_id')} ({asset.get('name')})"


def _best_score(results: list[dict[str, Any]]) -> float | None:
    scores = [r["score"] for r in results if r.get("score") is not None]
    return max(scores) if scores else None


def run_agent(
    request: object,
    *,
    settings: Settings,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    wait_s: float = 0.0,
    plan_only: bool = False,
    router: Router | None = None,
    generator: str | None = None,
    owner_key_id: str | None = None,
    url_for: UrlFor | None = None,
) -> dict[str, Any]:
    """Plan a natural-language request and carry it out; return {plan, steps, assets, jobs, notes}.

    Waits up to ``wait_s`` seconds for a generation job it starts. Raises AgentInputError for a request that is
    not usable text. Tool refusals (missing scope, no generator, full queue) become notes, never errors: a key
    without ``generate`` still gets search results.
    """
    from core.jobs import job_to_dict, wait

    started = start_agent(
        request,
        settings=settings,
        scopes=scopes,
        plan_only=plan_only,
        router=router,
        generator=generator,
        owner_key_id=owner_key_id,
        url_for=url_for,
    )
    job = started.job
    if job is not None and wait_s > 0:
        job = job_to_dict(wait(job["id"], max(0.0, min(wait_s, MAX_WAIT_S)), settings))
    return finish_agent(started, job)


@dataclass
class StartedAgent:
    """A run whose tools have run; ``job`` is the generation job it started (not waited for), if any."""

    response: dict[str, Any]
    run: _Run
    job: dict[str, Any] | None


def start_agent(
    request: object,
    *,
    settings: Settings,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    plan_only: bool = False,
    router: Router | None = None,
    generator: str | None = None,
    owner_key_id: str | None = None,
    url_for: UrlFor | None = None,
) -> StartedAgent:
    """Plan the request and run its tools without waiting for a generation job; finish with finish_agent().

    Callers that wait asynchronously (the REST API) wait for ``job`` between the two calls.
    """
    text = clean_request(request)
    if router is None:
        from agent.planner import get_planner

        router = get_planner(settings)
    try:
        plan = router.plan(text)
    except ValueError as exc:
        raise AgentInputError(str(exc)) from None
    response: dict[str, Any] = {"plan": plan.model_dump(), "steps": [], "assets": [], "jobs": [], "notes": []}
    run = _Run(ToolContext(settings, frozenset(scopes), owner_key_id, url_for))
    if plan_only:
        return StartedAgent(response, run, None)
    assets, job = _execute(plan, run, settings, generator)
    response["assets"] = assets
    return StartedAgent(response, run, job)


def finish_agent(started: StartedAgent, job: dict[str, Any] | None) -> dict[str, Any]:
    """Return {plan, steps, assets, jobs, notes}, given the started generation job as it stands now."""
    response, run = started.response, started.run
    if job is not None:
        response.update(assets=_finished_assets(job, run), jobs=[job])
    response.update(steps=run.steps, notes=run.notes)
    return response


def failure(response: dict[str, Any]) -> str | None:
    """Why a run served nothing (no step succeeded, or every job it started failed), or None when it served."""
    steps, notes = response["steps"], response["notes"]
    if not any(not step["result_summary"].startswith(ERROR_SUMMARY) for step in steps):
        return "; ".join(notes) or "no tool could run"
    jobs = response["jobs"]
    if jobs and not response["assets"] and all(job["status"] == "failed" for job in jobs):
        return "; ".join(notes) or "every generation job failed"
    return None


def _execute(
    plan: Plan, run: _Run, settings: Settings, generator: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Run the plan's route; return (search hits, the generation job started or None)."""
    count = plan.count or settings.agent.default_count
    if plan.route == "generate" and not run.ctx.allows("generate"):
        run.notes.append("this request asks to generate, but the caller lacks the `generate` scope: searched instead")
        return _search(plan, run, count), None
    if plan.route == "generate":
        return [], _generate(plan, run, count, generator)
    found = _search(plan, run, count)
    if plan.route == "search":
        if not found:
            run.notes.append("no assets matched")
        return found, None
    threshold = plan.threshold if plan.threshold is not None else settings.agent.generate_threshold
    best = _best_score(found)
    if best is not None and best >= threshold:
        run.notes.append(f"best match scores {best:.3f} >= threshold {threshold}: using the library, not generating")
        return found, None
    if best is not None:
        why = f"best match scores {best:.3f} < threshold {threshold}"
    else:
        why = "no assets matched" if not found else "no asset matched by similarity (only by name or text)"
    if uses_random_weights(settings.encoder):  # then every text score is noise, and that is why it generates
        why += " (the encoder runs on seeded random weights, so text scores mean nothing)"
    if not run.ctx.allows("generate"):
        run.notes.append(
            f"{why}; generating would need the `generate` scope, which the caller lacks: "
            "returning the closest search results"
        )
        return found, None
    run.notes.append(f"{why}: generating")
    generated = _generate(plan, run, count, generator)
    if generated is None:
        run.notes.append("generation did not start: returning the closest search results")
        return found, None
    return [], generated


def _search(plan: Plan, run: _Run, count: int) -> list[dict[str, Any]]:
    arguments = {"query": plan.query[:MAX_QUERY_CHARS], "modality": plan.modality, "limit": min(count, MAX_RESULTS)}
    result = run.call("search_assets", arguments)
    return list(result["results"]) if result else []


def _generate(plan: Plan, run: _Run, count: int, generator: str | None) -> dict[str, Any] | None:
    """Start a generation job for the plan and return it (not waited for); None when it could not start."""
    modality: GenModality = "image" if plan.modality == "any" else plan.modality
    try:
        spec = generator_for(modality, generator, run.ctx.settings)
    except ToolError as exc:
        run.notes.append(f"cannot generate {modality}: {exc}")
        return None
    arguments = _generation_arguments(plan, modality, spec, count, run.notes)
    result = run.call("generate_media", arguments)
    return None if result is None else dict(result["job"])


def _generation_arguments(
    plan: Plan, modality: GenModality, spec: GeneratorSpec, count: int, notes: list[str]
) -> dict[str, Any]:
    """Return generate_media arguments for the plan, fitted to what ``spec`` can make (each change noted)."""
    params, limits = plan.params, spec.limits
    arguments: dict[str, Any] = {"prompt": plan.query[:MAX_PROMPT_CHARS], "modality": modality, "generator": spec.name}
    if len(plan.query) > MAX_PROMPT_CHARS:
        notes.append(f"prompt cut to {MAX_PROMPT_CHARS} characters (the text encoder reads far fewer)")
    arguments["n"] = min(count, limits.max_n)
    if arguments["n"] < count:
        notes.append(f"{spec.name} makes at most {limits.max_n} per job: generating {limits.max_n}, not {count}")
    if params.width and params.height and spec.task not in AUDIO_TASKS:
        if limits.fixed_size:
            notes.append(f"{spec.name} only makes {spec.defaults.width}x{spec.defaults.height}: size ignored")
        else:
            width, height = _fit_size(params.width, params.height, limits.max_pixels, limits.size_multiple)
            if (width, height) != (params.width, params.height):
                notes.append(f"size {params.width}x{params.height} adjusted to {width}x{height} for {spec.name}")
            arguments.update(width=width, height=height)
    if params.duration_s and spec.task not in IMAGE_TASKS:
        longest = _longest_duration(spec)
        arguments["duration_s"] = min(params.duration_s, longest)
        if params.duration_s > longest:
            notes.append(
                f"{spec.name} makes at most {longest:g} s: generating {longest:g} s, not {params.duration_s:g}"
            )
    if params.negative_prompt:
        # Without classifier-free guidance (scale <= 1) a negative prompt has no effect, and validation refuses it.
        if spec.defaults.guidance_scale > 1:
            arguments["negative_prompt"] = params.negative_prompt
        else:
            notes.append(f"{spec.name} runs without guidance, so it cannot avoid '{params.negative_prompt}'")
    return arguments


def _longest_duration(spec: GeneratorSpec) -> float:
    """Return the longest output in seconds: the audio limit, or the most frames a video can have at its fps."""
    limits = spec.limits
    if spec.task in AUDIO_TASKS:
        return limits.max_duration_s
    fps = spec.defaults.fps or 1
    # Video lengths are 1 + a multiple of frames_step frames.
    return (1 + (limits.max_frames - 1) // limits.frames_step * limits.frames_step) / fps


def _fit_size(width: int, height: int, max_pixels: int, multiple: int = 8) -> tuple[int, int]:
    """Return the size in multiples of ``multiple``, scaled down (keeping its shape) to fit max_pixels."""
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    return (
        max(multiple, int(width * scale) // multiple * multiple),
        max(multiple, int(height * scale) // multiple * multiple),
    )


def _finished_assets(job: dict[str, Any], run: _Run) -> list[dict[str, Any]]:
    """Return the job's output assets when it succeeded; otherwise note where it stands."""
    if job["status"] != "succeeded":
        if job["status"] == "failed":
            run.notes.append(f"generation job {job['id']} failed: {job.get('error')}")
        else:
            run.notes.append(
                f"generation job {job['id']} is {job['status']}: poll it with get_job or GET /v1/jobs/{job['id']}"
            )
        return []
    assets = []
    for asset_id in job.get("result", {}).get("asset_ids", []):
        found = run.call("get_asset", {"asset_id": asset_id})
        if found is not None:
            assets.append(found["asset"])
    return assets
