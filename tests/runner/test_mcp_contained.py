"""With the runner on, its tools called over MCP run in the sandbox too, not on the upstream."""

from __future__ import annotations

import json

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from ..helpers import mint
from .conftest import Agent


async def test_an_mcp_call_of_a_runner_tool_runs_in_the_sandbox(agent: Agent) -> None:
    gk = agent.gk
    await agent.write("hello.txt", "hi from the workspace\n")
    headers = {"Authorization": f"Bearer {mint(gk)}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{gk.agent_url}/mcp/demo", http_client=http), mode="legacy") as mcp,
    ):
        ran = await mcp.call_tool("shell.exec", {"cmd": "cat hello.txt"})
        refused = await mcp.call_tool("shell.exec", {"cmd": "cat /root/.ssh/id_rsa"})
    assert not ran.is_error
    block = ran.content[0]
    assert isinstance(block, TextContent)
    result = json.loads(block.text)
    assert result["stdout"] == "hi from the workspace\n" and result["simulated"] is False
    assert ran.structured_content == result
    assert refused.is_error
    assert gk.demo is not None and gk.demo.mcp_received == []  # the simulated upstream saw nothing
