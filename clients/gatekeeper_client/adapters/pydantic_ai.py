"""pydantic-ai tools behind Gatekeeper (``pip install 'gatekeeper[pydantic-ai]'``).

``gate_tool(function, client, as_tool=..., arguments=...)`` is a ``pydantic_ai.Tool`` with the
function's own name, signature and docstring (so the model sees the same schema); each call is
decided by Gatekeeper first and the function runs only when allowed. A refusal is the tool's
return value, which the model reads. Plain functions (without ``RunContext``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic_ai import Tool

from .._async import AsyncGatekeeperClient
from ._gate import ArgumentMap, gated_call


def gate_tool(
    function: Callable[..., Any],
    client: AsyncGatekeeperClient,
    *,
    as_tool: str | None = None,
    arguments: ArgumentMap | None = None,
    wait: float | None = None,
) -> Tool[Any]:
    name = as_tool or function.__name__

    @functools.wraps(function)
    async def gated(**kwargs: Any) -> Any:
        asked = arguments(kwargs) if arguments else kwargs
        return await gated_call(client, name, asked, lambda: function(**kwargs), wait=wait)

    return Tool(gated, takes_ctx=False, name=function.__name__)
