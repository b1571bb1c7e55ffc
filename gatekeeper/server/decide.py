"""``POST /v1/decide``: the decision for a call, without forwarding it (OPA's decision API).

For runtimes that run their tools themselves (Claude Code hooks, agent frameworks): the call
goes through the very stages ``/v1/invoke`` runs (authenticate, understand, decide, budgets,
the hold with ``Prefer: wait``, the refusal), and where invoke would forward, this answers
``allowed`` instead. Same statuses and bodies as invoke for deny (403) and pending (202); an
allowed answer carries the decision instead of a tool result. Each answer is one audit record
with ``entry: "decide"``.
"""

from __future__ import annotations

from aiohttp import web

from ..pipeline import Exchange, Stage, need, record, run
from .budgets import refund_budgets
from .invoke import INVOKE_STAGES, ensure_recordable, forward
from .responses import error_response, json_response
from .state import CONFIG, METRICS, SINKS


async def answer_allowed(ex: Exchange) -> None:
    """Where invoke forwards: say so. The caller runs the call, so what it spent stays spent."""
    call, decision = need(ex.call, "understood call"), need(ex.decision, "decision")
    ensure_recordable(ex.request.app)  # a decision that cannot be recorded is not given
    ex.forwarded = True  # handed to the caller, who runs it: its budgets are not refunded
    ex.response = json_response(
        200,
        {
            "outcome": "allowed",
            "decision_id": ex.decision_id,
            "tool": call.tool,
            "code": decision.code,
            "reason": decision.reason,
            "rule": decision.rule,
            "capability": decision.capability,
            "capabilities": [c.name for c in call.capabilities],
            "policy_version": decision.policy_version,
            "approval_id": decision.approval_id or ex.approval_id,
            # False in monitor mode when the policy would have refused it: recorded, not enforced.
            "enforced": ex.enforced,
        },
    )


# The invoke flow with its last step swapped: nothing is forwarded from here.
DECIDE_STAGES: tuple[Stage, ...] = (
    *(stage for stage in INVOKE_STAGES if stage is not forward),
    answer_allowed,
)


async def handle_decide(request: web.Request) -> web.StreamResponse:
    ex = Exchange(entry="decide", request=request)
    try:
        await run(DECIDE_STAGES, ex)
    finally:
        try:
            await refund_budgets(ex)
        finally:
            record(ex, request.app[METRICS], request.app[CONFIG].mode, request.app.get(SINKS))
    if ex.error is not None:
        extra = {"decision_id": ex.decision_id}
        if ex.decision is not None:
            extra["outcome"] = "error"
        return error_response(ex.error, **extra)
    response: web.StreamResponse = ex.response
    return response
