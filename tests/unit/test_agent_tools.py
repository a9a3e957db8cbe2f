"""Agent tools: one schema exported to OpenAI and MCP, argument and scope checks, generator choice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.mcp_server import build_server
from agent.tools import TOOLS, GenModality, ToolContext, ToolError, call_tool, generator_for, openai_tools
from core.settings import Settings


def _mcp_tools(scopes: tuple[str, ...]) -> dict[str, Any]:
    from mcp import Client

    async def listed() -> dict[str, Any]:
        async with Client(build_server(Settings(), scopes)) as client:
            return {tool.name: tool for tool in (await client.list_tools()).tools}

    return asyncio.run(listed())


def test_openai_definitions() -> None:
    tools = openai_tools()
    assert [t["function"]["name"] for t in tools] == ["search_assets", "generate_media", "get_job", "get_asset"]
    for tool in tools:
        assert tool["type"] == "function" and tool["function"]["description"]
        parameters = tool["function"]["parameters"]
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False
    generate = tools[1]["function"]["parameters"]
    assert generate["properties"]["modality"]["enum"] == ["image", "audio", "video"]
    assert generate["properties"]["width"]["anyOf"][0]["multipleOf"] == 8


def test_mcp_tools_have_the_same_schemas_as_the_openai_definitions() -> None:
    listed = _mcp_tools(("search", "generate"))
    for definition in openai_tools():
        function = definition["function"]
        tool = listed[function["name"]]
        assert tool.description == function["description"]
        assert tool.input_schema["properties"] == function["parameters"]["properties"]
        assert tool.input_schema.get("required", []) == function["parameters"].get("required", [])
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.read_only_hint is (function["name"] != "generate_media")


def test_mcp_lists_only_what_the_scopes_allow() -> None:
    assert set(_mcp_tools(("search",))) == {"search_assets", "get_job", "get_asset"}


def test_no_tool_can_delete_or_change_stored_media() -> None:
    assert set(TOOLS) == {"search_assets", "generate_media", "get_job", "get_asset"}
    assert {tool.scope for tool in TOOLS.values()} == {"search", "generate"}


@pytest.mark.parametrize(
    ("name", "arguments", "code", "message"),
    [
        ("delete_assets", {}, "not-found", "unknown tool 'delete_assets'"),
        ("search_assets", {"query": "   "}, "invalid", "query: Value error, must contain non-whitespace text"),
        (
            "search_assets",
            {"query": "cats", "limit": 0},
            "invalid",
            "limit: Input should be greater than or equal to 1",
        ),
        ("search_assets", {"query": "cats", "drop": "all"}, "invalid", "drop: Extra inputs are not permitted"),
        ("search_assets", {"query": "x" * 2001}, "invalid", "query: String should have at most 2000 characters"),
        ("generate_media", {"prompt": "a fox", "width": 100}, "invalid", "width: Input should be a multiple of 8"),
        ("generate_media", {"prompt": "a fox", "modality": "hologram"}, "invalid", "modality"),
        ("get_job", {}, "invalid", "job_id: Field required"),
    ],
)
def test_call_tool_refuses_bad_calls_before_touching_anything(
    tmp_path: Path, name: str, arguments: dict[str, Any], code: str, message: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(ToolError) as caught:
        call_tool(name, arguments, ToolContext(settings, frozenset({"search", "generate"})))
    assert caught.value.code == code and message in str(caught.value)
    assert not (tmp_path / "data").exists()  # nothing was opened or created


def test_scopes_are_enforced() -> None:
    ctx = ToolContext(Settings(), frozenset({"search"}))
    with pytest.raises(ToolError, match="generate_media needs the `generate` scope") as caught:
        call_tool("generate_media", {"prompt": "a fox"}, ctx)
    assert caught.value.code == "forbidden"
    assert ToolContext(Settings(), frozenset({"admin"})).allows("generate")


def test_generator_choice() -> None:
    settings = Settings()
    assert generator_for("image", "tiny-random", settings).name == "tiny-random"
    with pytest.raises(ToolError, match="'tiny-random' is text-to-image, not text-to-video"):
        generator_for("video", "tiny-random", settings)
    with pytest.raises(ToolError, match="unknown generator 'nope'"):
        generator_for("image", "nope", settings)
    modalities: list[tuple[GenModality, str]] = [
        ("image", "text-to-image"),
        ("audio", "text-to-audio"),
        ("video", "text-to-video"),
    ]
    for modality, task in modalities:
        spec = generator_for(modality, None, settings)
        assert spec.task == task and not spec.is_random  # random-weight generators are only used when named
