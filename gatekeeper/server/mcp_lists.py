"""``tools/list``, ``resources/list`` (and its templates) and ``prompts/list`` show only what the
caller could use.

A tool is shown when the policy could let the caller call it; a resource when reading its URI
could be allowed (maybe after an operator's approval), a template when reading it as written
could; a prompt when getting it could. Items
of the wrong shape and items of a list we cannot read are dropped, never passed on.

Content a server attributes to a URI (a resource a prompt embeds, the contents of a
``resources/read`` answer other than the one asked for) reaches the caller only if it could
read that URI itself, now: a prompt is decided by its name alone, and must not be a way to read
``/root/.ssh/id_rsa`` that ``resources/read`` refuses.
"""

from __future__ import annotations

from typing import Any

import structlog

from ..gate import Gate
from ..mcp_methods import FILTERED_LISTS, method_arguments, method_tool
from ..models import Outcome, Principal
from ..tool_pins import ToolPins
from .mcp_relay import Rewrite

log = structlog.get_logger("gatekeeper.mcp")
CONTENT_FILTERED = frozenset({"prompts/get", "resources/read"})


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
        if key in ("resources", "resourceTemplates"):  # a template as written (its reads are decided)
            uri = item.get("uri" if key == "resources" else "uriTemplate")
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


def content_filter(
    gate: Gate, principal: Principal, upstream: str, method: str, params: Any
) -> Rewrite | None:
    """The rewrite that withholds content attributed to a URI the caller could not read, for
    ``prompts/get`` and ``resources/read`` answers (None for any other method). The URI a
    ``resources/read`` asked for was decided already (maybe approved by an operator)."""
    if method not in CONTENT_FILTERED:
        return None
    asked = params.get("uri") if method == "resources/read" and isinstance(params, dict) else None
    read = method_tool("resources/read")

    def readable(uri: Any) -> bool:
        if uri == asked:
            return True
        if not isinstance(uri, str):
            return False
        verdict = gate.evaluate(principal, read, method_arguments(upstream, {"uri": uri}))
        return verdict.decision.outcome is Outcome.ALLOW

    def withheld(uri: Any) -> dict[str, Any]:
        log.warning("mcp_content_withheld", upstream=upstream, method=method, principal=principal.subject)
        text = f"[Gatekeeper withheld content from {str(uri)[:200]!r}: reading it is not allowed]"
        return {"type": "text", "text": text}

    def screened(content: Any) -> Any:
        if isinstance(content, list):
            return [screened(item) for item in content]
        if isinstance(content, dict) and content.get("type") == "resource":
            resource = content.get("resource")
            uri = resource.get("uri") if isinstance(resource, dict) else None
            return content if readable(uri) else withheld(uri)
        return content

    async def rewrite(message: Any) -> Any:
        if isinstance(message, list):
            return [await rewrite(item) for item in message]
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            return message
        messages = result.get("messages")
        if isinstance(messages, list):
            for item in messages:
                if isinstance(item, dict) and "content" in item:
                    item["content"] = screened(item["content"])
        contents = result.get("contents")
        if isinstance(contents, list):
            kept = []
            for item in contents:
                uri = item.get("uri") if isinstance(item, dict) else None
                if readable(uri):
                    kept.append(item)
                else:  # a resource's contents are data, not messages: left out, not replaced
                    withheld(uri)
            result["contents"] = kept
        return message

    return rewrite
