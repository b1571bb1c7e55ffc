"""Immutable values passed between the pipeline's stages."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A "tool" named so is an MCP method (``mcp.method:resources/read``): the policy object it is
# decided by is its name itself, where a tool's is ``tool:NAME``.
MCP_METHOD_PREFIX = "mcp.method:"


def policy_object(tool: str) -> str:
    """The policy object a call's tool is decided by."""
    return tool if tool.startswith(MCP_METHOD_PREFIX) else f"tool:{tool}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by a verified token."""

    subject: str
    roles: tuple[str, ...]
    issuer: str
    expires_at: float
    operator: bool = False
    token_id: str | None = None


@dataclass(slots=True, order=True, unsafe_hash=True)
class Capability:
    """Something a call would do, e.g. ``proc.exec:git`` or ``net.tunnel.reverse``.

    ``amounts`` carries quantities budgets count (``("gpu_hours", 576.0)``);
    ``evidence`` is the fragment of the argument that produced it, for people.

    Never assigned to after construction, though not ``frozen``: a frozen ``__init__`` (one
    ``object.__setattr__`` a field) cost three times this one, and shell inspection builds
    several per call. Hash, equality and order are unchanged: by ``name`` alone.
    """

    name: str
    evidence: str = field(default="", compare=False)
    amounts: tuple[tuple[str, float], ...] = field(default=(), compare=False)


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One understood call: canonical arguments, what they would do, and their digest."""

    principal: Principal
    tool: str
    arguments: dict[str, Any]
    canonical: bytes
    capabilities: tuple[Capability, ...]
    digest: str
    upstream: str = ""  # the manifest's upstream, fixed when the call was understood
    # The arguments' own canonical bytes (inside ``canonical``): the body forwarded to the tool.
    canonical_arguments: bytes = b""
    # ``{workspace path: sha256}`` an operator's approval covered (runner/bound_files.py): the
    # runner runs exactly those bytes, whatever the workspace holds by then.
    bound_files: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer for one call, and the rule that gave it."""

    outcome: Outcome
    code: str
    reason: str
    rule: str | None
    capability: str | None = None
    matched: tuple[str, ...] = ()
    policy_version: str = ""
    quorum: int = 1  # how many distinct operators must approve an escalated call
    quorum_rule: str | None = None  # when quorum > 1: the rule that asks for that many (escalate:N)
    approval_id: str | None = None
