"""The enforcement stages every entry point runs after its own parse stage.

Decide, bind the files a held command runs, spend budgets, hold for an operator, confirm the
files, refuse, forward: each exists here once, whichever entry point (``/v1/invoke``, MCP) the
call came through. A stage reads the exchange and the shared services (``ex.app``) and leaves
its result on the exchange; the entry point's renderer turns that into its own answer. Monitor
mode is decided here too: nothing is held, and what would be refused is recorded and forwarded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gatekeeper import codes

from ..audit.log import appended_in_task
from ..errors import GatekeeperError, Unavailable, UpstreamError
from ..escalation import Pending
from ..models import Decision, Outcome, ToolCall
from ..pipeline import FAILURE_CODES, Exchange, Halt, Stage, need, record, run
from .budgets import refund_budgets, spend_budgets
from .run_files import bind_run_files, confirm_run_files
from .state import AUDIT, CONFIG, ESCALATION, GATE, LIFECYCLE, METRICS, SINKS, TOOL_PINS
from .written_code import inherit_written_code, record_written_code

R = TypeVar("R")
Render = Callable[[Exchange], Awaitable[R]]


def decide(ex: Exchange) -> None:
    principal, tool = need(ex.principal, "principal"), need(ex.tool, "tool")
    verdict = ex.app[GATE].evaluate(principal, tool, ex.arguments)
    ex.call, ex.decision, ex.shadow = verdict.call, verdict.decision, verdict.shadow


def check_tool_pin(ex: Exchange) -> None:
    """A tool whose definition changed (or was flagged) since it was pinned is not called until
    an operator approves the new definition (``tool_pins``)."""
    pins, call, decision = ex.app.get(TOOL_PINS), ex.call, ex.decision
    if pins is None or call is None or decision is None or decision.outcome is Outcome.DENY:
        return
    pin = pins.withheld(call.upstream, call.tool)
    if pin is None:
        return
    why = f"flagged ({', '.join(pin.flags)})" if pin.flags else "changed since it was pinned"
    ex.decision = Decision(
        Outcome.DENY,
        codes.TOOL_DEFINITION_CHANGED,
        f"the definition of {call.tool} is {why}; an operator must approve it "
        f"(gatekeeper tools pins) before it is called",
        None,
        capability=None,
        policy_version=decision.policy_version,
    )


def monitoring(ex: Exchange) -> bool:
    mode: str = ex.app[CONFIG].mode
    return mode == "monitor"


def hold_escalated(ex: Exchange) -> Awaitable[None] | None:
    decision = need(ex.decision, "decision")
    if decision.outcome is not Outcome.ESCALATE or ex.call is None:
        return None
    if monitoring(ex):
        return None  # nothing is held in monitor mode; refuse_denied records it as a would-be refusal
    return _hold(ex, ex.call, decision)


async def _hold(ex: Exchange, call: ToolCall, decision: Decision) -> None:
    result = await ex.app[ESCALATION].hold(call, decision, wait_seconds=ex.wait_seconds, progress=ex.progress)
    if isinstance(result, Pending):
        ex.pending, ex.approval_id = result, result.approval_id
        raise Halt
    ex.decision = recheck_after_hold(ex, decision, result)
    ex.approval_id = result.approval_id


def recheck_after_hold(ex: Exchange, held: Decision, result: Decision) -> Decision:
    """A call may wait minutes for a human; if the policy changed meanwhile, decide it again:
    an operator's approval never overrides what the new policy denies."""
    gate = ex.app[GATE]
    if result.outcome is not Outcome.ALLOW or gate.policy_set is None:
        return result
    if gate.policy_set.version == held.policy_version or ex.principal is None or ex.tool is None:
        return result
    again = gate.evaluate(ex.principal, ex.tool, ex.arguments).decision
    return again if again.outcome is Outcome.DENY else result


def refuse_denied(ex: Exchange) -> None:
    decision = need(ex.decision, "decision")
    if decision.outcome is Outcome.ALLOW:
        return
    if monitoring(ex) and decision.code not in FAILURE_CODES:
        ex.enforced = False  # monitor mode: recorded as would-deny, forwarded anyway
        return
    raise Halt


def ensure_recordable(ex: Exchange) -> None:
    """A call whose decision cannot be recorded does not run (every entry point, here): not
    while the audit store refuses writes, nor once ``audit.max_unwritten_records`` records (those
    of the calls in flight included) or ``audit.max_unwritten_seconds`` of them wait."""
    audit = ex.app.get(AUDIT)
    if audit is None:
        return
    lifecycle = ex.app.get(LIFECYCLE)
    inflight = lifecycle.inflight if lifecycle is not None else 0
    problem = audit.refusal(ex.app[CONFIG].audit.max_unwritten_seconds)
    if problem is None and audit.lag + inflight > audit.max_queue:
        problem = f"{audit.lag} records wait to be written and {inflight} calls are in flight"
    if problem is not None:
        raise Unavailable(
            f"the audit trail cannot record this call ({problem}); it was not forwarded. Retry later",
            code=codes.AUDIT_UNAVAILABLE,
        )


async def settle_record(ex: Exchange) -> GatekeeperError | None:
    """With ``audit.durable_answers``, hold the answer until the call's record is durable
    (committed; with ``audit.writer: process``, in the journal, which the writer process commits
    and the next start replays): a crash then loses no record of a call that was answered. None
    when the answer may go; else the refusal that replaces it (the record stays queued and is
    written when the store recovers). Call it after ``process`` (which queued the record) and
    before the answer is sent."""
    audit = ex.app.get(AUDIT)
    settings = ex.app[CONFIG].audit
    if audit is None or not settings.durable_answers:
        return None
    mine = appended_in_task.get()
    if not ex.forwarded and (mine == 0 or audit.refusal(settings.max_unwritten_seconds) is not None):
        # A call that did not run is answered at once while the store is down (or when its record
        # could not be queued and went to the log instead).
        return None
    if mine and await audit.wait_durable(mine, settings.max_unwritten_seconds):
        return None
    what = "the tool received the call, but its answer is withheld" if ex.forwarded else "refused"
    return Unavailable(
        f"the call's audit record could not be written within {settings.max_unwritten_seconds:g} s; {what}",
        code=codes.AUDIT_UNAVAILABLE,
        forwarded=ex.forwarded,
    )


async def forward(ex: Exchange) -> None:
    call = need(ex.call, "understood call")
    transport = need(ex.transport, "transport")
    ensure_recordable(ex)
    started = time.perf_counter()
    # From here the upstream may act on the call even if its answer fails: its budget stays spent.
    ex.forwarded = True
    try:
        ex.answer = await transport.forward(ex)
    except UpstreamError as exc:
        if exc.code in (codes.UPSTREAM_UNREACHABLE, codes.UPSTREAM_MISCONFIGURED):
            ex.forwarded = False  # nothing reached the tool: what the call spent is refunded
        raise
    finally:
        ex.upstream_seconds = time.perf_counter() - started
        # The upstream was fixed when the call was understood: a policy swap cannot redirect it.
        ex.app[METRICS].upstream_timer(call.upstream).observe(ex.upstream_seconds)


# Everything between an entry point's parse stage and its renderer, in order.
DECISION_STAGES: tuple[Stage, ...] = (
    decide,
    inherit_written_code,
    check_tool_pin,
    bind_run_files,
    spend_budgets,
    hold_escalated,
    confirm_run_files,
    refuse_denied,
    record_written_code,
)
ENFORCE_STAGES: tuple[Stage, ...] = (*DECISION_STAGES, forward)


async def process(stages: Sequence[Stage], ex: Exchange, render: Render[R]) -> R:
    """Run the stages and render the answer; then, whatever happened, refund what a call that
    did not run spent and write its one decision record (after the answer was written, so the
    record knows whether the caller was still there to get it)."""
    try:
        await run(stages, ex)
        return await render(ex)
    finally:
        try:
            if ex.charges and not ex.forwarded:  # most calls spent nothing, or ran
                await refund_budgets(ex)
        finally:
            app = ex.app
            appended_in_task.set(0)  # settle_record then knows whether this call's record was queued
            record(ex, app[METRICS], app[CONFIG].mode, app.get(SINKS))


def refused(ex: Exchange) -> bool:
    """Settled without running: refused by policy (the renderer shows the decision)."""
    return ex.error is None and ex.pending is None and not ex.forwarded and ex.answer is None
