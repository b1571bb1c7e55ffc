"""What budgets make of a policy decision, purely: the one rule the server's budget stage and
``policy explain`` share, so explain cannot say "escalate" where the server answers
``budget_exceeded``.

A ``deny`` budget over its limit refuses the call, whatever the policy said (never approvable);
an ``escalate`` budget over its limit holds a call the policy allowed (an escalated call keeps
its own rule and quorum). Charges are checked in plan order (deny budgets first), each with what
earlier charges of the same call add to the same counter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from gatekeeper import codes

from ..models import Decision, Outcome
from .counter import Exceeded, fits
from .plan import Charge

__all__ = ["budget_decision", "first_exceeded"]


def first_exceeded(charges: Sequence[Charge], used: Mapping[str, float]) -> Exceeded | None:
    """The first charge that would not fit given ``used`` (charge key -> spend in its window)."""
    pending: dict[str, float] = {}
    for charge in charges:
        before = used.get(charge.key, 0.0) + pending.get(charge.key, 0.0)
        if not fits(before, charge.amount, charge.limit):
            return Exceeded(charge, before, math.inf)
        pending[charge.key] = pending.get(charge.key, 0.0) + charge.amount
    return None


def budget_decision(decision: Decision, exceeded: Exceeded, where: str | None = None) -> Decision:
    """``decision`` after ``exceeded``: denied, held (an allowed call), or unchanged (already held)."""
    if exceeded.charge.on_exceed == "deny":
        return _over(decision, Outcome.DENY, exceeded.reason(), where)
    if decision.outcome is Outcome.ALLOW:
        return _over(decision, Outcome.ESCALATE, exceeded.reason(), where)
    return decision


def _over(decision: Decision, outcome: Outcome, reason: str, where: str | None) -> Decision:
    return replace(
        decision,
        outcome=outcome,
        code=codes.BUDGET_EXCEEDED,
        reason=reason,
        rule=where or decision.rule,
        capability=None,
        quorum=1 if outcome is Outcome.ESCALATE else decision.quorum,
    )
