"""What each MCP method would do, as capabilities: the same reading tool arguments get.

Every JSON-RPC method a client sends to ``/mcp/{upstream}`` is either protocol plumbing
(``PROTOCOL_METHODS``: the handshake, pings, cancellations; passed on, no decision) or a call
decided by the policy like a tool call. Its object is ``mcp.method:NAME``, which a rule must
allow (so a method nobody mapped is refused by default), plus what its parameters name:

- ``resources/read`` (and ``subscribe``/``unsubscribe``) of a URI: ``file://`` URIs are file
  reads (``fs.read:PATH`` and the path's classes, ``cred.ssh`` say), ``http(s)://`` URIs go
  through the URL inspector, any other scheme is ``mcp.resource:URI``;
- ``prompts/get``: ``mcp.prompt:NAME``;
- ``completion/complete``: what its reference names (a prompt, or a resource URI); a resource
  template is decided as written and as completed (its variables filled with the argument's
  value and the context's), since a server completes what the value points at.

Pure: no I/O, like the inspectors it uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from .errors import SchemaError
from .inspectors import InspectContext, Inspector
from .models import MCP_METHOD_PREFIX, Capability

METHOD_PREFIX: Final = MCP_METHOD_PREFIX
# Session plumbing with no effect on the upstream's data: relayed without a decision record.
PROTOCOL_METHODS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/elicitation/complete",
    }
)
# Lists whose items the caller sees only if it could use them (filtered, never just relayed).
FILTERED_LISTS: Final = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}
URI_METHODS: Final = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
MAX_URI: Final = 8192


def method_tool(method: str) -> str:
    """The name an MCP method is decided and recorded under (the policy object it stands for)."""
    return METHOD_PREFIX + method


def is_method_tool(tool: str) -> bool:
    return tool.startswith(METHOD_PREFIX)


def method_arguments(upstream: str, params: Any) -> dict[str, Any]:
    """What a method call's digest binds: the upstream it goes to and its parameters, less the
    protocol's ``_meta`` (a progress token differs on every retry of the same request, and an
    approval must match the retry)."""
    if isinstance(params, dict) and "_meta" in params:
        params = {key: value for key, value in params.items() if key != "_meta"}
    return {"upstream": upstream, "params": {} if params is None else params}


def method_capabilities(
    tool: str, arguments: Any, inspectors: Mapping[str, Inspector], ctx: InspectContext
) -> list[Capability]:
    """The capabilities of one method call; raises SchemaError on parameters of the wrong shape."""
    method = tool[len(METHOD_PREFIX) :]
    if not isinstance(arguments, dict) or set(arguments) != {"upstream", "params"}:
        raise SchemaError("an MCP method call is {upstream, params}")
    params = arguments["params"]
    if not isinstance(params, dict):
        raise SchemaError(f"{method} params must be an object")
    if method in URI_METHODS:
        return uri_capabilities(_string(params, "uri", method), inspectors, ctx)
    if method == "prompts/get":
        return [Capability(f"mcp.prompt:{_string(params, 'name', method)}")]
    if method == "completion/complete":
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise SchemaError("completion/complete needs params.ref")
        if ref.get("type") == "ref/prompt":
            return [Capability(f"mcp.prompt:{_string(ref, 'name', method)}")]
        if ref.get("type") == "ref/resource":
            template = _string(ref, "uri", method)
            found = uri_capabilities(template, inspectors, ctx)
            completed = _fill_template(template, _completion_values(params))
            if completed != template:
                found += uri_capabilities(completed, inspectors, ctx)
            return found
        raise SchemaError("completion/complete: ref.type must be ref/prompt or ref/resource")
    return []


def uri_capabilities(uri: str, inspectors: Mapping[str, Inspector], ctx: InspectContext) -> list[Capability]:
    """A resource URI as what reading it exercises. What cannot be read plainly is opaque."""
    if len(uri) > MAX_URI or any(ord(ch) < 0x20 or ch == "\x7f" for ch in uri):
        return [Capability("url.opaque", uri[:200])]
    try:
        parts = urlsplit(uri)
    except ValueError:
        return [Capability("url.opaque", uri[:200])]
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = unquote(parts.path)
        if parts.netloc.lower() not in ("", "localhost") or parts.query or parts.fragment:
            return [Capability("fs.opaque", uri[:200])]
        if not path.startswith("/") or "\x00" in path:
            return [Capability("fs.opaque", uri[:200])]
        return inspectors["fs.read"](path, ctx)
    if scheme in ("http", "https"):
        return inspectors["url"](uri, ctx)
    if not scheme:
        return [Capability("url.opaque", uri[:200])]
    return [Capability(f"mcp.resource:{uri}", uri[:200])]


_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^{}]*)\}")


def _completion_values(params: Mapping[str, Any]) -> dict[str, str]:
    """The template variables a completion names: the context's, and the argument being completed."""
    values: dict[str, str] = {}
    context = params.get("context")
    known = context.get("arguments") if isinstance(context, dict) else None
    if isinstance(known, dict):
        values.update((k, v) for k, v in known.items() if isinstance(k, str) and isinstance(v, str))
    argument = params.get("argument")
    if isinstance(argument, dict) and isinstance(argument.get("name"), str):
        value = argument.get("value")
        values[argument["name"]] = value if isinstance(value, str) else ""
    return values


def _fill_template(template: str, values: Mapping[str, str]) -> str:
    """A URI template (RFC 6570) with its variables filled, each value percent-encoded whole (the
    URI reading decodes it again: ``../`` in a value is read as the path it makes)."""

    def fill(match: re.Match[str]) -> str:
        operator, names = match.group(1), match.group(2)
        filled = []
        for spec in names.split(","):
            name = spec.split(":", 1)[0].rstrip("*")
            if name in values:
                value = quote(values[name], safe="")
                filled.append(f"{name}={value}" if operator in (";", "?", "&") else value)
        if not filled:
            return ""
        joiner = {"": ",", "+": ",", "#": ",", ".": ".", "/": "/", ";": ";", "?": "&", "&": "&"}[operator]
        prefix = {"": "", "+": "", "#": "#", ".": ".", "/": "/", ";": ";", "?": "?", "&": "&"}[operator]
        return prefix + joiner.join(filled)

    return _EXPRESSION.sub(fill, template)


def _string(params: Mapping[str, Any], key: str, method: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{method} needs params.{key} (a non-empty string)")
    return value
