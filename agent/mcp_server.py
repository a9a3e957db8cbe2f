"""`sensorium mcp`: the agent tools served over MCP (stdio) with the official ``mcp`` SDK's MCPServer.

Each MCP tool is built from the same pydantic argument model as its OpenAI definition: the function handed to the
SDK gets a signature made from the model's fields, so the SDK derives the same input schema, and the call goes
through ``agent.tools.call_tool`` (scope checks and validation included).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any

from agent.loop import DEFAULT_SCOPES
from agent.tools import TOOLS, Tool, ToolContext, ToolError, call_tool
from core.settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

INSTRUCTIONS = (
    "Sensorium is a media library (images, audio, video). Use search_assets to find existing media by meaning; "
    "generate_media to start a job that makes new media (poll it with get_job); get_asset for one asset's details."
)


def _signature(tool: Tool) -> inspect.Signature:
    """A keyword-only signature with one parameter per field of the tool's argument model."""
    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if field.is_required() else field.default,
            annotation=Annotated[field.annotation, field],
        )
        for name, field in tool.args.model_fields.items()
    ]
    return inspect.Signature(parameters, return_annotation=dict[str, Any])


def _bind(tool: Tool, ctx: ToolContext) -> Callable[..., dict[str, Any]]:
    """Return the function MCPServer calls for ``tool``: validated kwargs in, the tool's result out."""
    from mcp.server.mcpserver.exceptions import ToolError as McpToolError

    def run(**arguments: Any) -> dict[str, Any]:
        try:
            return call_tool(tool.name, arguments, ctx)
        except ToolError as exc:
            # The SDK shows a ToolError's message to the client; anything else it hides as an internal error.
            raise McpToolError(f"{exc.code}: {exc}") from None

    run.__name__ = tool.name
    run.__doc__ = tool.description
    run.__signature__ = _signature(tool)  # type: ignore[attr-defined]
    return run


def build_server(settings: Settings, scopes: Iterable[str] = DEFAULT_SCOPES) -> MCPServer:
    """Return an MCPServer exposing the tools these scopes allow."""
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    ctx = ToolContext(settings, frozenset(scopes))
    server: MCPServer = MCPServer(name="sensorium", instructions=INSTRUCTIONS, log_level="WARNING")
    for tool in TOOLS.values():
        if ctx.allows(tool.scope):
            server.add_tool(
                _bind(tool, ctx),
                name=tool.name,
                description=tool.description,
                annotations=ToolAnnotations(
                    read_only_hint=tool.read_only, destructive_hint=False, open_world_hint=False
                ),
                structured_output=True,
            )
    return server


def serve_stdio(settings: Settings, scopes: Iterable[str] = DEFAULT_SCOPES) -> None:
    """Serve the tools over stdin/stdout until the client closes the connection."""
    build_server(settings, scopes).run("stdio")
