"""The typed boundary every policy engine implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..models import Capability, Decision, Principal


class PolicyEngine(Protocol):
    """Decides calls. Implementations must be pure (no I/O) and must fail closed."""

    def decide(
        self,
        principal: Principal,
        tool: str,
        capabilities: Sequence[Capability],
        *,
        tool_object: bool = True,
    ) -> Decision:
        """Any deny wins, then any escalate; allow needs the tool and every capability allowed.
        ``tool_object=False``: the capabilities alone (``tool`` is then context for conditions);
        with none to decide, the answer is deny."""
        ...

    def effective_roles(self, roles: Sequence[str]) -> frozenset[str]:
        """The roles with every role they inherit (for budgets that apply to a parent role)."""
        ...

    def tool_visible(self, principal: Principal, tool: str) -> bool:
        """Could this principal ever be allowed to call ``tool``? (For MCP ``tools/list``.)"""
        ...
