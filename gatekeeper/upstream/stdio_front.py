"""The reverse bridge: Gatekeeper's ``/mcp/NAME`` as a stdio MCP server, for clients that can
only start a command (desktop apps). ``gatekeeper mcp stdio --upstream NAME``.

Every request read on stdin is sent to Gatekeeper with the SDK's streamable HTTP client and the
agent's token, so it is authenticated, decided and recorded as any MCP call is; the answers
(refusals as ``isError`` tool results included) are written back on stdout.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)

from .. import __version__


def front_server(name: str, gatekeeper: Client) -> Server[Any]:
    """A stdio-side server whose every handler asks Gatekeeper's ``/mcp/NAME``."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return await gatekeeper.list_tools(cursor=params.cursor if params else None, cache_mode="refresh")

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        return await gatekeeper.call_tool(params.name, params.arguments)

    async def list_resources(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        return await gatekeeper.list_resources(cursor=params.cursor if params else None)

    async def read_resource(
        ctx: ServerRequestContext[Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        return await gatekeeper.read_resource(params.uri)

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListPromptsResult:
        return await gatekeeper.list_prompts(cursor=params.cursor if params else None)

    async def get_prompt(ctx: ServerRequestContext[Any], params: GetPromptRequestParams) -> GetPromptResult:
        return await gatekeeper.get_prompt(params.name, params.arguments)

    return Server(
        f"gatekeeper-{name}",
        version=__version__,
        description=f"Gatekeeper's MCP endpoint /mcp/{name}: every call is decided by its policy",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


async def serve_stdio(base_url: str, token: str, upstream: str, *, read_seconds: float = 330.0) -> None:
    """Serve until stdin closes. ``read_seconds`` covers a call held for an operator (up to 5 min)."""
    url = f"{base_url.rstrip('/')}/mcp/{upstream}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=read_seconds) as http,
        Client(streamable_http_client(url, http_client=http)) as gatekeeper,
    ):
        server = front_server(upstream, gatekeeper)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def run(base_url: str, token: str, upstream: str) -> None:
    anyio.run(serve_stdio, base_url, token, upstream)
