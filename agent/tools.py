"""The agent's typed tools, defined once as pydantic models and exported as OpenAI functions and MCP tools.

There is no tool that deletes or changes stored media: whatever a request says, an agent can only search, read,
and start generation jobs, and only within the caller's scopes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.plan import Modality
from core.settings import Settings
from generators.params import HARD_MAX_DURATION_S, HARD_MAX_N, HARD_MAX_SIDE, MAX_PROMPT_CHARS, MAX_SEED
from generators.registry import (
    GeneratorSpec,
    GeneratorUnavailable,
    Task,
    UnknownGenerator,
    default_generator,
    get_generator,
)

MAX_QUERY_CHARS = 2000
MAX_RESULTS = 100
MAX_WAIT_S = 600.0
MAX_ID_CHARS = 64

GenModality = Literal["image", "audio", "video"]
ErrorCode = Literal["invalid", "forbidden", "not-found", "unavailable", "busy"]
# (asset_id, "content" | "thumbnail") -> URL; the REST API passes one, CLI and MCP do not.
UrlFor = Callable[[str, str], str | None]

MODALITY_KINDS: dict[Modality, list[str]] = {"image": ["image"], "audio": ["audio"], "video": ["video"], "any": []}
MODALITY_TASKS: dict[GenModality, Task] = {"image": "text-to-image", "audio": "text-to-audio", "video": "text-to-video"}


class ToolError(Exception):
    """A tool call that cannot be done as asked; the message says why and what to change."""

    def __init__(self, message: str, code: ErrorCode = "invalid", retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


class SearchAssetsArgs(BaseModel):
    """Arguments of search_assets."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="What the media shows or says, in plain words, e.g. 'a red sports car at night'.",
    )
    modality: Modality = Field(default="any", description="Kind of media to return; 'any' returns every kind.")
    limit: int = Field(default=5, ge=1, le=MAX_RESULTS, description="How many assets to return, best first.")
    min_score: float | None = Field(
        default=None, ge=-1, le=1, description="Drop assets whose cosine similarity is below this."
    )
    collection: str | None = Field(default=None, max_length=256, description="Only assets in this collection.")

    _query_not_blank = field_validator("query")(_not_blank)


class GenerateMediaArgs(BaseModel):
    """Arguments of generate_media."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, description="What to generate, including any style words."
    )
    modality: GenModality = Field(default="image", description="Kind of media to generate.")
    n: int = Field(default=1, ge=1, le=HARD_MAX_N, description="How many outputs (each generator has its own max).")
    width: int | None = Field(
        default=None, ge=8, le=HARD_MAX_SIDE, multiple_of=8, description="Images and video: pixels, a multiple of 8."
    )
    height: int | None = Field(
        default=None, ge=8, le=HARD_MAX_SIDE, multiple_of=8, description="Images and video: pixels, a multiple of 8."
    )
    duration_s: float | None = Field(
        default=None, gt=0, le=HARD_MAX_DURATION_S, description="Audio and video only: length in seconds."
    )
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS, description="What to avoid.")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Seed for reproducible output.")
    generator: str | None = Field(
        default=None, max_length=64, description="Generator name; omitted means the server's default for the kind."
    )
    wait_s: float = Field(
        default=0.0, ge=0, le=MAX_WAIT_S, description="Seconds to wait for the job to finish; 0 returns it queued."
    )

    _prompt_not_blank = field_validator("prompt")(_not_blank)


class GetJobArgs(BaseModel):
    """Arguments of get_job."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="The id generate_media returned.")


class GetAssetArgs(BaseModel):
    """Arguments of get_asset."""

    model_config = ConfigDict(extra="forbid")

    asset_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="An asset id from search or a job.")


@dataclass(frozen=True)
class ToolContext:
    """Who is calling and with what: settings, the caller's scopes, its key id and how to build URLs."""

    settings: Settings
    scopes: frozenset[str]
    owner_key_id: str | None = None
    url_for: UrlFor | None = None

    def allows(self, scope: str) -> bool:
        """Return whether the caller holds ``scope`` (``admin`` implies every scope)."""
        return "admin" in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class Tool:
    """One tool: its name, description, argument model, required scope and implementation."""

    name: str
    description: str
    args: type[BaseModel]
    scope: str
    run: Callable[[Any, ToolContext], dict[str, Any]]
    read_only: bool = True  # False: it creates something (a job and, later, assets); no tool deletes


# --- implementations ------------------------------------------------------------------------------------------


def _search_assets(args: SearchAssetsArgs, ctx: ToolContext) -> dict[str, Any]:
    from index.encoders import EncoderWeightsUnavailable
    from index.library import ModelMismatchError
    from index.search import SearchError, SearchFilters, SearchRequest, search

    request = SearchRequest(
        text=args.query,
        filters=SearchFilters(
            kinds=list(MODALITY_KINDS[args.modality]), collections=[args.collection] if args.collection else []
        ),
        min_score=args.min_score,
        limit=args.limit,
    )
    try:
        results = search(request, ctx.settings)
    except SearchError as exc:
        raise ToolError(str(exc)) from None
    except (EncoderWeightsUnavailable, ModelMismatchError) as exc:
        raise ToolError(str(exc), "unavailable") from None
    hits = [r.to_dict(ctx.url_for) for r in results]
    for hit, result in zip(hits, results, strict=True):
        if result.thumbnail_key is None:
            hit["thumbnail_url"] = None  # no thumbnail was made, so its URL would only 404
    return {"results": hits}


def generator_for(modality: GenModality, name: str | None, settings: Settings) -> GeneratorSpec:
    """Return the generator to use for ``modality`` (the named one, else the default), or raise ToolError."""
    from generators.service import ensure_user_generators

    task = MODALITY_TASKS[modality]
    try:
        ensure_user_generators(settings)
    except GeneratorUnavailable as exc:
        raise ToolError(str(exc), "unavailable") from None
    if name is not None:
        try:
            spec = get_generator(name)
        except UnknownGenerator as exc:
            raise ToolError(str(exc)) from None
        if spec.task != task:
            raise ToolError(f"generator {name!r} is {spec.task}, not {task}: name a {task} generator or omit it")
        return spec
    try:
        return default_generator(task)
    except UnknownGenerator as exc:
        raise ToolError(f"{exc}, so {modality} cannot be generated here", "unavailable") from None


def _generate_media(args: GenerateMediaArgs, ctx: ToolContext) -> dict[str, Any]:
    from core.jobs import JobDispatchError, JobRequestError, QueueFull, job_to_dict, wait
    from generators.params import InvalidGenerationParams
    from generators.service import submit_generation

    spec = generator_for(args.modality, args.generator, ctx.settings)
    fields = args.model_dump(
        include={"prompt", "n", "width", "height", "duration_s", "negative_prompt", "seed"}, exclude_none=True
    )
    try:
        job = submit_generation(
            {**fields, "generator": spec.name}, owner_key_id=ctx.owner_key_id, settings=ctx.settings
        )
    except (InvalidGenerationParams, JobRequestError) as exc:
        raise ToolError(str(exc)) from None
    except QueueFull as exc:
        raise ToolError(str(exc), "busy", retry_after_s=exc.retry_after_s) from None
    except (GeneratorUnavailable, JobDispatchError) as exc:
        raise ToolError(str(exc), "unavailable") from None
    if args.wait_s > 0:
        job = wait(job.id, args.wait_s, ctx.settings)
    return {"job": job_to_dict(job)}


def _get_job(args: GetJobArgs, ctx: ToolContext) -> dict[str, Any]:
    from core.jobs import get_job, job_to_dict

    job = get_job(args.job_id, ctx.settings)
    # Another key's job is reported as missing, so ids cannot be probed.
    if job is None or (
        ctx.owner_key_id is not None and not ctx.allows("admin") and job.owner_key_id != ctx.owner_key_id
    ):
        raise ToolError(f"no job {args.job_id!r}", "not-found")
    return {"job": job_to_dict(job)}


def asset_to_dict(asset: Any, url_for: UrlFor | None = None) -> dict[str, Any]:
    """Return the public JSON shape of one stored asset (call inside the session that loaded it)."""
    return {
        "asset_id": asset.id,
        "name": asset.name,
        "uri": asset.uri or asset.blob_key,
        "kind": asset.kind,
        "source": asset.source,
        "mime": asset.mime,
        "bytes": asset.bytes,
        "width": asset.width,
        "height": asset.height,
        "duration": asset.duration,
        "collection": (asset.collections or ["default"])[0],
        "collections": list(asset.collections),
        "tags": list(asset.tags),
        "metadata": asset.meta or {},
        "status": asset.status,
        "created_at": asset.created_at.isoformat() if asset.created_at else None,
        "trashed_at": asset.trashed_at.isoformat() if asset.trashed_at else None,
        "thumbnail_url": url_for(asset.id, "thumbnail") if url_for else None,
        "content_url": url_for(asset.id, "content") if url_for else None,
    }


def _get_asset(args: GetAssetArgs, ctx: ToolContext) -> dict[str, Any]:
    from index.services.assets import AssetNotFound, get_asset

    try:
        asset = get_asset(ctx.settings, args.asset_id)
    except AssetNotFound:
        raise ToolError(f"no asset {args.asset_id!r}", "not-found") from None
    return {"asset": asset_to_dict(asset, ctx.url_for)}


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "search_assets",
            "Search the media library (images, audio, video) by meaning and return the best-matching assets, "
            "each with its cosine score and the matching segment.",
            SearchAssetsArgs,
            "search",
            _search_assets,
        ),
        Tool(
            "generate_media",
            "Start a job that generates new media from a text prompt; the outputs are stored and indexed. "
            "Returns the job; poll it with get_job.",
            GenerateMediaArgs,
            "generate",
            _generate_media,
            read_only=False,
        ),
        Tool(
            "get_job",
            "Return a generation job's status, progress, result asset ids and error.",
            GetJobArgs,
            "search",
            _get_job,
        ),
        Tool(
            "get_asset",
            "Return one asset's details: kind, name, size, tags, metadata and provenance.",
            GetAssetArgs,
            "search",
            _get_asset,
        ),
    )
}


def argument_errors(exc: ValidationError) -> str:
    """Return a one-line summary naming each invalid argument."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors())


def call_tool(name: str, arguments: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Validate ``arguments`` and run tool ``name`` for the caller; raise ToolError for anything it must refuse."""
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}", "not-found")
    if not ctx.allows(tool.scope):
        raise ToolError(f"{name} needs the `{tool.scope}` scope, which this caller does not have", "forbidden")
    try:
        args = tool.args.model_validate(dict(arguments))
    except ValidationError as exc:
        raise ToolError(f"invalid arguments for {name}: {argument_errors(exc)}") from None
    return tool.run(args, ctx)


def openai_tools(names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Return the tools as OpenAI function-calling definitions (``tools=`` of chat completions)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.args.model_json_schema()},
        }
        for t in TOOLS.values()
        if names is None or t.name in names
    ]
