"""The seam where held calls go. The approval queue plugs in here.

Until a queue is configured, escalated calls are refused with
``approval_unavailable`` (fail closed): nobody is there to approve them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gatekeeper import codes

from .models import Decision, Outcome, ToolCall


@dataclass(frozen=True, slots=True)
class Pending:
    """The call is still held when the caller's wait ran out."""

    approval_id: str
    expires_at: float


Progress = Callable[[float, float], Awaitable[None]]


class EscalationHandler(Protocol):
    async def hold(
        self,
        call: ToolCall,
        decision: Decision,
        *,
        wait_seconds: float | None,
        progress: Progress | None = None,
    ) -> Decision | Pending:
        """Wait up to ``wait_seconds`` for a human: an allow/deny Decision, or Pending.

        ``progress(elapsed, total)`` is awaited now and then while waiting (MCP progress).
        """
        ...


class NoApprovalQueue:
    async def hold(
        self,
        call: ToolCall,
        decision: Decision,
        *,
        wait_seconds: float | None,
        progress: Progress | None = None,
    ) -> Decision | Pending:
        return Decision(
            Outcome.DENY,
            codes.APPROVAL_UNAVAILABLE,
            f"{decision.reason}; no approval queue is configured, so the call is refused",
            decision.rule,
            capability=decision.capability,
            policy_version=decision.policy_version,
        )
