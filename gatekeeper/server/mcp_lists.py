"""``tools/list``, ``resources/list`` and ``prompts/list`` show only what the caller could use.

A tool is shown when the policy could let the caller call it; a resource when reading its URI
could be allowed (maybe after an operator's approval); a prompt when getting it could. Items
of the wrong shape and items of a list we cannot read are dropped, never passed on.
"""

from __future__ import annotations

from typing import Any

from ..gate import Gate
from ..mcp_methods import FILTERED_LISTS, method_arguments, method_tool
from ..models import Principal
from ..tool_pins import ToolPins
from .mcp_relay import Rewrite


def list_filter(
    gate: Gate, principal: Principal, upstream: str, method: str, pins: ToolPins | None = None
) -> Rewrite | None:
    """The rewrite that filters ``method``'s answer, or None when it is not a filtered list.
    A tool whose definition is withheld (``tool_pins``) is not shown either."""
    key = FILTERED_LISTS.get(method)
    if key is None:
        return None

    def visible(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        if key == "tools":
            name = item.get("name")
            return isinstance(name, str) and gate.tool_visible(principal, name)
        if key == "resources":
            uri = item.get("uri")
            return isinstance(uri, str) and gate.method_visible(
                principal, method_tool("resources/read"), method_arguments(upstream, {"uri": uri})
            )
        name = item.get("name")
        return isinstance(name, str) and gate.method_visible(
            principal, method_tool("prompts/get"), method_arguments(upstream, {"name": name})
        )

    async def rewrite(message: Any) -> Any:
        if isinstance(message, list):  # a batch of answers: each one is filtered
            return [await rewrite(item) for item in message]
        if isinstance(message, dict) and isinstance(message.get("result"), dict):
            items = message["result"].get(key)
            if isinstance(items, list):
                withheld: set[str] = set()
                if key == "tools" and pins is not None:
                    withheld = await pins.observe(upstream, [i for i in items if isinstance(i, dict)])
                message["result"][key] = [
                    item for item in items if visible(item) and item.get("name") not in withheld
                ]
            elif key in message["result"]:
                message["result"][key] = []
        return message

    return rewrite


def answer_filter(gate: Gate, principal: Principal, upstream: str, pins: ToolPins | None) -> Rewrite:
    """Filters an answer to a list wherever it turns up without its request (a ``GET`` stream's
    replay of a POST's events): by the list it carries, as its request's filter would have."""
    filters = {
        key: list_filter(gate, principal, upstream, method, pins if key == "tools" else None)
        for method, key in FILTERED_LISTS.items()
    }

    async def rewrite(message: Any) -> Any:
        if isinstance(message, list):  # a batch of answers: each one is filtered
            return [await rewrite(item) for item in message]
        result = message.get("result") if isinstance(message, dict) and "method" not in message else None
        if isinstance(result, dict):
            for key, list_rewrite in filters.items():
                if key in result and list_rewrite is not None:
                    message = await list_rewrite(message)
        return message

    return rewrite
