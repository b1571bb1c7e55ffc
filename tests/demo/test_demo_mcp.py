"""The MCP demo on a real loopback port, driven by the official SDK's streamable HTTP client.

Three wire shapes are covered: the handshake era (``initialize``, ``Mcp-Session-Id``) with SSE
responses and with JSON responses, and the 2026-07-28 era the SDK client picks by default
(``mode="auto"``: ``server/discover``, no session).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent

from gatekeeper.demo.mcp_app import McpDemoServer
from gatekeeper.demo.tools import TOOL_NAMES, TOOL_SCHEMAS

# (client mode, server json_response): what each case puts on the wire.
WIRES = {
    "legacy-sse": ("legacy", False),
    "legacy-json": ("legacy", True),
    "modern-sse": ("auto", False),
    "modern-json": ("auto", True),
}


@pytest.fixture(params=list(WIRES))
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[tuple[McpDemoServer, str]]:
    mode, json_response = WIRES[request.param]
    async with McpDemoServer(port=0, json_response=json_response) as server:
        yield server, mode


def _connect(wire: tuple[McpDemoServer, str]) -> Client:
    # Entered inside each test, not in a fixture: the SDK's anyio task groups must be entered
    # and exited by the same task, and pytest-asyncio runs fixture setup and teardown apart.
    server, mode = wire
    return Client(server.url, mode=mode)


def _payload(result: CallToolResult) -> Any:
    """The tool's JSON answer, checked to be the same in the text block and structuredContent."""
    (block,) = result.content
    assert isinstance(block, TextContent)
    payload = json.loads(block.text)
    assert result.structured_content == payload
    return payload


async def test_negotiated_protocol(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        _, mode = wire
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert client.server_info is not None
        assert client.server_info.name == "gatekeeper-demo"


async def test_lists_the_five_tools_with_their_exact_schemas(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        listed = await client.list_tools()
        assert [tool.name for tool in listed.tools] == list(TOOL_NAMES)
        for tool in listed.tools:
            assert tool.input_schema == TOOL_SCHEMAS[tool.name]
            assert tool.description


async def test_calls_each_tool(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        shell = await client.call_tool("shell.exec", {"cmd": "ls src"})
        assert not shell.is_error
        assert _payload(shell) == {"exit_code": 0, "stdout": "app/\n", "stderr": "", "simulated": True}

        fetch = _payload(await client.call_tool("http.fetch", {"url": "https://pypi.org/simple/"}))
        assert fetch["body"] == "(simulated response for GET https://pypi.org/simple/)"

        write = _payload(await client.call_tool("file.write", {"path": "notes.md", "content": "abc"}))
        assert write == {"path": "/workspace/notes.md", "bytes_written": 3}

        read = _payload(await client.call_tool("file.read", {"path": "/workspace/notes.md"}))
        assert read == {"path": "/workspace/notes.md", "content": "abc"}

        gpus = _payload(await client.call_tool("compute.provision", {"gpu_type": "h100", "count": 8}))
        assert (gpus["provisioned"], gpus["simulated"], gpus["count"], gpus["hours"]) == (
            False,
            True,
            8,
            None,
        )


async def test_missing_file_is_a_tool_error(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        result = await client.call_tool("file.read", {"path": "missing.txt"})
        assert result.is_error
        assert _payload(result)["error"]["code"] == "not_found"


async def test_arguments_outside_the_schema_are_a_tool_error(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        result = await client.call_tool("compute.provision", {"gpu_type": "h100", "count": "lots"})
        assert result.is_error
        assert _payload(result)["error"]["code"] == "invalid_arguments"


async def test_unknown_tool_is_a_protocol_error(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("shell.run", {"cmd": "ls"})
        assert caught.value.code == INVALID_PARAMS


async def test_progress_token_is_accepted(wire: tuple[McpDemoServer, str]) -> None:
    async with _connect(wire) as client:
        updates: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append(progress)

        result = await client.call_tool("shell.exec", {"cmd": "pytest"}, progress_callback=on_progress)
        assert not result.is_error
        assert "1 passed" in _payload(result)["stdout"]
        assert updates == []  # the demo answers at once and never reports progress


async def test_records_calls_with_request_headers(wire: tuple[McpDemoServer, str]) -> None:
    server, mode = wire
    headers = {"Authorization": "Bearer upstream-secret"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(server.url, http_client=http), mode=mode) as client,
    ):
        await client.call_tool("file.read", {"path": "README.md"})
    ((tool, arguments, recorded),) = server.received
    assert (tool, arguments) == ("file.read", {"path": "README.md"})
    assert recorded["authorization"] == "Bearer upstream-secret"
    if mode == "legacy":
        assert recorded["mcp-protocol-version"] == "2025-11-25"
        assert recorded["mcp-session-id"]
    else:
        assert recorded["mcp-protocol-version"] == "2026-07-28"
        assert "mcp-session-id" not in recorded
        assert (recorded["mcp-method"], recorded["mcp-name"]) == ("tools/call", "file.read")


async def test_stateless_server_has_no_session() -> None:
    async with McpDemoServer(port=0, stateless=True) as server, Client(server.url, mode="legacy") as client:
        assert not (await client.call_tool("file.read", {"path": "README.md"})).is_error
    assert "mcp-session-id" not in server.received[0].headers


async def test_busy_port_raises_and_stop_is_idempotent() -> None:
    async with McpDemoServer(port=0) as first:
        with pytest.raises(OSError):
            await McpDemoServer(port=first.port).start()
    await first.stop()  # a second stop is harmless
