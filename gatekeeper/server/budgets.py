"""The budget stage: after the policy speaks, spend the call's budgets, atomically.

Runs for calls the policy allows or escalates. A budget over its limit turns the decision
into its ``on_exceed``: ``deny`` always wins (never approvable); ``escalate`` holds an
allowed call for an operator (an escalated call keeps its own rule and quorum).

Every budget that applies is charged before the call is held, the ``escalate`` ones past
their limit if need be (that is what an operator or a grant may approve), the ``deny`` ones
only within theirs. So an approved or granted call is counted like any other, and a ``deny``
ceiling it would pass refuses it here, before anyone is asked. What was spent for a call that
then did not run (refused, pending, upstream down) is refunded.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import replace

import structlog

from gatekeeper import codes

from ..budgets import BudgetUnavailable, plan_charges
from ..budgets.verdict import budget_decision
from ..errors import GatekeeperError
from ..models import Decision, Outcome
from ..pipeline import Exchange
from ..policy import PolicyEngine
from .state import BUDGETS, GATE, METRICS

log = structlog.get_logger("gatekeeper.budgets")


async def spend_budgets(ex: Exchange) -> None:
    decision, call = ex.decision, ex.call
    if decision is None or call is None or decision.outcome is Outcome.DENY:
        return
    app = ex.app
    counter = app.get(BUDGETS)
    policy_set = app[GATE].policy_set
    rules = policy_set.budgets if policy_set is not None else None
    if counter is None or rules is None or not rules.rules:
        return
    try:
        engine: PolicyEngine = policy_set.engine
        principal = call.principal

        def roles() -> Collection[str]:  # read from the role graph only if a rule would charge
            return engine.effective_roles(principal.roles)

        charges = plan_charges(rules, principal, call.tool, call.capabilities, roles=roles)
        if not charges:
            return
        now = time.time()
        result = await counter.try_spend(charges, now=now)
        past = result.exceeded
        if not result.ok and past is not None and past.charge.on_exceed == "escalate":
            # Held for a human, who may approve going past escalate budgets, never past a deny
            # one: charge them all now, escalate ones without their check, so the approved (or
            # granted) call is counted, and its share of a deny ceiling is kept while it waits.
            escalate = {c.rule_id for c in charges if c.on_exceed == "escalate"}
            result = await counter.try_spend(charges, now=now, exempt=escalate)
    except (BudgetUnavailable, GatekeeperError) as exc:  # fail closed: no budget answer, no call
        log.error("budget_error", tool=call.tool, error=exc.message)
        ex.decision = _budget_decision(
            decision, Outcome.DENY, codes.BUDGET_UNAVAILABLE, f"budgets could not be checked: {exc.message}"
        )
        return
    metrics = app[METRICS]
    if result.ok:
        ex.charges, ex.charged_at = charges, now
        for charge in charges:
            metrics.budget_spent.labels(rule=charge.rule_id).inc(charge.amount)
        if past is None:
            return
    else:
        past = result.exceeded
    if past is None:  # "not ok" without saying which budget: fail closed
        ex.decision = _budget_decision(
            decision, Outcome.DENY, codes.BUDGET_UNAVAILABLE, "budgets gave no answer"
        )
        return
    rule = rules.get(past.charge.rule_id)
    metrics.budget_exceeded.labels(rule=past.charge.rule_id).inc()
    where = rule.location if rule else None
    ex.decision = budget_decision(decision, past, where)


async def refund_budgets(ex: Exchange) -> None:
    """Give back what a call spent when it did not run."""
    if not ex.charges or ex.forwarded:
        return
    counter = ex.app.get(BUDGETS)
    if counter is None:
        return
    try:
        await counter.refund(ex.charges, now=ex.charged_at or time.time())
    except Exception as exc:  # a lost refund over-counts; it must never stop the decision record
        log.warning("budget_refund_failed", error=f"{type(exc).__name__}: {exc}")
    ex.charges = None


def _budget_decision(
    decision: Decision, outcome: Outcome, code: str, reason: str, rule: str | None = None
) -> Decision:
    return replace(
        decision,
        outcome=outcome,
        code=code,
        reason=reason,
        rule=rule or decision.rule,
        capability=None,
        quorum=1 if outcome is Outcome.ESCALATE else decision.quorum,
    )
