"""Claude Code's PreToolUse hook, sans-IO: a hook event becomes a Gatekeeper call, and
Gatekeeper's answer becomes the hook's answer (``hookSpecificOutput.permissionDecision``).

The tool mapping is data (``defaults/hooks/claude_code.yaml``), merged with the policy
author's own file. The HTTP exchange and the fail-closed wrapper live in ``cli/hook.py``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..yamlfile import read_yaml

DEFAULT_MAPPING = Path(__file__).resolve().parent.parent / "defaults" / "hooks" / "claude_code.yaml"
Permission = Literal["allow", "deny", "ask"]
EscalateMode = Literal["ask", "hold"]
MCP_PREFIX = "mcp__"


@dataclass(frozen=True, slots=True)
class ToolMapping:
    tool: str
    arguments: Mapping[str, Any]  # Gatekeeper argument -> source spec (see the YAML file)
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HookMapping:
    tools: Mapping[str, ToolMapping]
    local: frozenset[str]
    unmapped: Literal["ask", "deny"]

    @classmethod
    def load(cls, extra: Path | None = None) -> HookMapping:
        raw = _section(read_yaml(DEFAULT_MAPPING, what="hook mapping"), str(DEFAULT_MAPPING))
        if extra is not None:
            more = _section(read_yaml(extra, what="hook mapping"), str(extra))
            raw = {
                "tools": {**raw.get("tools", {}), **(more.get("tools") or {})},
                "local": [*raw.get("local", []), *(more.get("local") or [])],
                "unmapped": more.get("unmapped", raw.get("unmapped", "ask")),
            }
        tools: dict[str, ToolMapping] = {}
        for name, spec in (raw.get("tools") or {}).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("tool"), str):
                raise ConfigError(f"hook mapping: tools.{name} needs a 'tool' (the Gatekeeper tool name)")
            arguments = spec.get("arguments") or {}
            paths = spec.get("paths") or []
            if not isinstance(arguments, dict) or not isinstance(paths, list):
                raise ConfigError(f"hook mapping: tools.{name}: arguments is a map, paths a list")
            tools[str(name)] = ToolMapping(spec["tool"], arguments, tuple(str(p) for p in paths))
        unmapped = raw.get("unmapped", "ask")
        if unmapped not in ("ask", "deny"):
            raise ConfigError("hook mapping: unmapped must be ask or deny")
        return cls(tools, frozenset(str(t) for t in raw.get("local") or ()), unmapped)


def _section(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not set(data) <= {"tools", "local", "unmapped"}:
        raise ConfigError(f"{source}: a hook mapping has only tools, local and unmapped")
    return data


@dataclass(frozen=True, slots=True)
class GatekeeperCall:
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NotAsked:
    """No Gatekeeper call: the tool is Claude Code's own, or nothing maps it."""

    permission: Permission
    reason: str


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where the project lies on this machine, and where the policy expects it (``/workspace``)."""

    project_dir: str | None
    root: str = "/workspace"

    def map(self, path: str) -> str:
        if self.project_dir is None or not posixpath.isabs(path):
            return path
        normal = posixpath.normpath(path)
        project = posixpath.normpath(self.project_dir)
        if normal == project:
            return self.root
        if normal.startswith(project.rstrip("/") + "/"):
            return posixpath.join(self.root, normal[len(project.rstrip("/")) + 1 :])
        return path  # outside the project: decided as the path it is


def _source(spec: Any, tool_input: Mapping[str, Any], cwd: str | None) -> Any:
    """The value a source spec names, or None when the input has no such value."""
    if isinstance(spec, list):  # alternatives: the first with a value
        for alternative in spec:
            value = _source(alternative, tool_input, cwd)
            if value is not None:
                return value
        return None
    if isinstance(spec, dict):
        if "const" in spec:
            return spec["const"]
        if spec.get("cwd"):
            return cwd
        raise ConfigError(f"hook mapping: unknown argument source {spec!r}")
    if not isinstance(spec, str):
        raise ConfigError(f"hook mapping: unknown argument source {spec!r}")
    if "[]." in spec:
        field, item_field = spec.split("[].", 1)
        items = tool_input.get(field)
        if not isinstance(items, list):
            return None
        parts = [i.get(item_field) for i in items if isinstance(i, dict)]
        return "\n".join(str(p) for p in parts if p is not None)
    return tool_input.get(spec)


def translate(event: Any, mapping: HookMapping, workspace: Workspace) -> GatekeeperCall | NotAsked:
    """A PreToolUse event (``tool_name``, ``tool_input``, ``cwd`` ...) as a Gatekeeper call."""
    if not isinstance(event, dict):
        raise ValueError("the hook event is not a JSON object")
    name, tool_input = event.get("tool_name"), event.get("tool_input", {})
    if not isinstance(name, str) or not name:
        raise ValueError("the hook event has no tool_name")
    if not isinstance(tool_input, dict):
        raise ValueError("the hook event's tool_input is not an object")
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    if name in mapping.local:
        return NotAsked("allow", f"{name} is Claude Code's own tool; Gatekeeper is not asked")
    if name.startswith(MCP_PREFIX) and name not in mapping.tools:
        _server, sep, tool = name[len(MCP_PREFIX) :].partition("__")
        if sep and tool:
            return GatekeeperCall(tool, dict(tool_input))
    spec = mapping.tools.get(name)
    if spec is None:
        return NotAsked(
            mapping.unmapped,
            f"Gatekeeper has no mapping for Claude Code's tool {name}; "
            "a policy author can add one (gatekeeper hook claude-code --tools FILE)",
        )
    arguments: dict[str, Any] = {}
    for argument, source in spec.arguments.items():
        value = _source(source, tool_input, cwd)
        if value is not None:
            arguments[str(argument)] = value
    for argument in spec.paths:
        if isinstance(arguments.get(argument), str):
            arguments[argument] = workspace.map(arguments[argument])
    return GatekeeperCall(spec.tool, arguments)


def hook_output(permission: Permission, reason: str) -> dict[str, Any]:
    """The hook's JSON answer on stdout (exit status 0)."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": permission,
            "permissionDecisionReason": reason,
        }
    }


def answer(status: int, body: Any, escalate: EscalateMode) -> tuple[Permission, str]:
    """Gatekeeper's answer to ``POST /v1/decide`` as a permission decision. Anything that is
    not a clear allow is a deny (or, interactive, an ask for an escalation)."""
    body = body if isinstance(body, dict) else {}
    where = f" (rule {body['rule']})" if body.get("rule") else ""
    if status == 200 and body.get("outcome") == "allowed":
        return "allow", f"Gatekeeper allowed it{where}: {body.get('reason') or 'allowed'}"
    if status == 403 and body.get("outcome") == "denied":
        reason = str(body.get("reason") or "refused")
        return "deny", f"Gatekeeper denied it [{body.get('code')}]{where}: {reason}"
    if status == 202 and body.get("outcome") == "pending":
        approval = body.get("approval_id")
        why = body.get("reason") or "it needs review"
        if escalate == "ask":
            return "ask", f"Gatekeeper holds this for review{where}: {why} (approval {approval})"
        return "deny", (
            f"Gatekeeper holds this for an operator{where}: {why}. Approval {approval} was not decided "
            f"in time (until {body.get('expires_at')}); send the same call again once it is approved"
        )
    code = body.get("code", f"http_{status}")
    message = body.get("message") or body.get("reason") or "no answer"
    return "deny", f"Gatekeeper could not decide this call ({code}: {message}); refused"


def project_dir(event: Any, configured: str | None) -> str | None:
    if configured:
        return configured
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env:
        return env
    cwd = event.get("cwd") if isinstance(event, dict) else None
    return cwd if isinstance(cwd, str) else None
