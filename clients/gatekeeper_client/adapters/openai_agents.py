"""OpenAI Agents SDK tools behind Gatekeeper (``pip install 'gatekeeper[openai-agents]'``).

``gate_function_tool(tool, client, as_tool=..., arguments=...)`` wraps a ``FunctionTool``
(what ``@function_tool`` makes): each call is decided by Gatekeeper first and runs only when
allowed; otherwise the refusal is the tool's output, which the model reads.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agents import FunctionTool
from agents.tool_context import ToolContext

from .._async import AsyncGatekeeperClient
from ._gate import ArgumentMap, gated_call


def gate_function_tool(
    tool: FunctionTool,
    client: AsyncGatekeeperClient,
    *,
    as_tool: str | None = None,
    arguments: ArgumentMap | None = None,
    wait: float | None = None,
) -> FunctionTool:
    name = as_tool or tool.name
    original = tool.on_invoke_tool

    async def on_invoke(ctx: ToolContext[Any], raw_arguments: str) -> Any:
        try:
            parsed = json.loads(raw_arguments or "{}")
        except ValueError:
            return "The tool's arguments are not valid JSON; nothing was run."
        if not isinstance(parsed, dict):
            return "The tool's arguments must be a JSON object; nothing was run."
        asked = arguments(parsed) if arguments else parsed
        return await gated_call(client, name, asked, lambda: original(ctx, raw_arguments), wait=wait)

    return dataclasses.replace(tool, on_invoke_tool=on_invoke)
