"""LangChain / LangGraph tools behind Gatekeeper (``pip install 'gatekeeper[langchain]'``).

``gate_tool(tool, client, as_tool="shell.exec", arguments=...)`` wraps any ``BaseTool``: each
call is decided by Gatekeeper first and runs only when allowed; a refusal is the tool's output
(a ``ToolMessage`` the model reads). ``gatekeeper_tool(client, "file.read", ...)`` is a tool
that Gatekeeper itself forwards to its upstream. Both are async tools (``ainvoke``), as
LangGraph's ``ToolNode`` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

from .._async import AsyncGatekeeperClient
from ._gate import ArgumentMap, gated_call


def gate_tool(
    tool: BaseTool,
    client: AsyncGatekeeperClient,
    *,
    as_tool: str | None = None,
    arguments: ArgumentMap | None = None,
    wait: float | None = None,
) -> StructuredTool:
    """``tool``, asked about before every run as Gatekeeper's ``as_tool`` (default its own name)."""
    name = as_tool or tool.name

    async def run(**kwargs: Any) -> Any:
        asked = arguments(kwargs) if arguments else kwargs
        return await gated_call(client, name, asked, lambda: tool.ainvoke(kwargs), wait=wait)

    return StructuredTool.from_function(
        coroutine=run,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        infer_schema=False,
    )


def gatekeeper_tool(
    client: AsyncGatekeeperClient,
    name: str,
    description: str,
    args_schema: type[BaseModel] | Mapping[str, Any],
    *,
    tool_name: str | None = None,
    wait: float | None = None,
) -> StructuredTool:
    """A tool Gatekeeper forwards (``/v1/invoke``): the model sees ``tool_name`` (default
    ``name`` with dots as underscores, which model APIs require)."""

    async def run(**kwargs: Any) -> Any:
        return await gated_call(client, name, kwargs, None, wait=wait)

    return StructuredTool.from_function(
        coroutine=run,
        name=tool_name or name.replace(".", "_"),
        description=description,
        args_schema=dict(args_schema) if isinstance(args_schema, Mapping) else args_schema,
        infer_schema=False,
    )
