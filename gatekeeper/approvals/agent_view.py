"""What an agent may learn about its own held call: the state, the decision it amounts to, and
the operators' comments. Not the other principals' calls, not the operator-only fields."""

from __future__ import annotations

import time
from typing import Any

from gatekeeper import codes

from ..timefmt import iso8601, iso8601_or_none
from .models import Approval, State
from .queue import approved_reason, denied_reason

_RESEND = "send exactly the same call again to run it (once)"


def decision_of(approval: Approval, now: float) -> dict[str, str]:
    """The outcome the held call has now, as /v1/invoke would put it."""
    state = approval.state
    if state is State.PENDING and now >= approval.expires_at:
        state = State.EXPIRED  # the sweeper has not got to it yet; the answer must not wait for it
    if state is State.PENDING:
        left = approval.required_approvals - approval.approvals
        return {
            "outcome": "pending",
            "code": codes.APPROVAL_PENDING,
            "reason": f"waiting for {left} more operator approval{'s' if left != 1 else ''}",
        }
    if state is State.APPROVED:
        return {
            "outcome": "allowed",
            "code": codes.APPROVED,
            "reason": f"{approved_reason(approval)}; {_RESEND}",
        }
    if state is State.CONSUMED:
        return {"outcome": "allowed", "code": codes.APPROVAL_USED, "reason": "approved, and the call has run"}
    if state is State.DENIED:
        return {"outcome": "denied", "code": codes.APPROVAL_DENIED, "reason": denied_reason(approval)}
    return {
        "outcome": "denied",
        "code": codes.APPROVAL_EXPIRED,
        "reason": "no operator decided before the approval expired; send the call again to ask anew",
    }


def agent_view(approval: Approval, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    decision = decision_of(approval, now)
    comments = [v.comment for v in approval.votes if v.comment]
    return {
        "id": approval.id,
        "state": "expired" if decision["code"] == codes.APPROVAL_EXPIRED else str(approval.state),
        "decision": decision,
        "comment": "\n".join(comments) or None,
        "tool": approval.tool,
        "capabilities": list(approval.capabilities),
        "rule": approval.rule,
        "reason": approval.reason,
        "required_approvals": approval.required_approvals,
        "approvals": approval.approvals,
        "votes": [
            {"operator": v.operator, "verdict": v.verdict, "comment": v.comment, "at": iso8601(v.at)}
            for v in approval.votes
        ],
        "created_at": iso8601(approval.created_at),
        "expires_at": iso8601(approval.expires_at),
        "decided_at": iso8601_or_none(approval.decided_at),
        "consumed_at": iso8601_or_none(approval.consumed_at),
    }
