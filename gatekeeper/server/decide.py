"""``POST /v1/decide``: the decision for a call, without forwarding it (OPA's decision API).

For runtimes that run their tools themselves (Claude Code hooks, agent frameworks): the call
goes through the very stages ``/v1/invoke`` runs (authenticate, understand, decide, budgets,
the hold with ``Prefer: wait``, the refusal), and where invoke would forward, this answers
``allowed`` instead. Same statuses and bodies as invoke for deny (403) and pending (202); an
allowed answer carries the decision instead of a tool result. Each answer is one audit record
with ``entry: "decide"``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..pipeline import Exchange, Stage, need
from .invoke import authenticate, parse_invoke, render_invoke
from .request_ids import request_id_of
from .responses import error_response, json_response
from .stages import DECISION_STAGES, ensure_recordable, process, refused, settle_record


async def answer_allowed(ex: Exchange) -> None:
    """Where invoke forwards: say so. The caller runs the call, so what it spent stays spent."""
    call, decision = need(ex.call, "understood call"), need(ex.decision, "decision")
    ensure_recordable(ex)  # a decision that cannot be recorded is not given
    ex.forwarded = True  # handed to the caller, who runs it: its budgets are not refunded
    ex.answer = {
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
    }


# The invoke flow with its last step swapped: nothing is forwarded from here.
DECIDE_STAGES: tuple[Stage, ...] = (authenticate, parse_invoke, *DECISION_STAGES, answer_allowed)


async def render_decide(ex: Exchange) -> web.StreamResponse:
    """Refusals, holds and errors as invoke answers them; an allowed call's decision."""
    if ex.error is not None or ex.pending is not None or refused(ex):
        return await render_invoke(ex)
    answer: dict[str, Any] = ex.answer
    return json_response(200, answer)


async def handle_decide(request: web.Request) -> web.StreamResponse:
    ex = Exchange(entry="decide", app=request.app, request=request, request_id=request_id_of(request))
    response = await process(DECIDE_STAGES, ex, render_decide)
    unrecorded = await settle_record(ex)
    if unrecorded is not None:
        return error_response(unrecorded, decision_id=ex.decision_id)
    return response
