"""What a call would spend: budget rules x (principal, tool, capabilities) -> charges. Pure, no I/O.

A rule applies when its subject is ``*``, ``user:<the caller's sub>``, or one of the caller's roles.
It is charged when its ``match`` pattern matches ``tool:<name>`` or a capability name:

- ``metric: calls`` counts 1 per call per rule, however many objects match;
- any other metric sums that amount over every matching capability (all of them, duplicates
  included: counting twice is safer than once); a matching capability without that amount
  adds nothing, and a rule whose sum is 0 is not charged.

``per: principal`` gives each caller their own counter; ``per: role`` shares one counter among
everyone holding the rule's role (for a ``*`` rule: one counter per role the caller holds).

Charges come deny rules first, then escalate rules, each in file order, so the first charge
a counter reports as exceeded is the strictest one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from ..errors import PolicyError
from ..models import Capability, Principal, policy_object
from .rules import CALLS, BudgetRule, BudgetRules, deny_first

__all__ = ["Charge", "charge_key", "parse_charge_key", "plan_charges"]


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter a call would add ``amount`` to; it fits while the window's total stays <= limit.

    ``key`` is ``<rule id>|<scope>|<window>s`` with scope ``user:<sub>`` or ``role:<role>``
    (percent-encoded), so a changed window never shares a counter with the old one. Counters add
    the window bucket themselves (``@<window start>``).
    """

    rule_id: str
    key: str
    amount: float
    limit: float
    window_seconds: int
    on_exceed: Literal["deny", "escalate"]
    note: str = ""


def charge_key(rule_id: str, scope: str, window_seconds: int) -> str:
    """``scope`` is ``user:<sub>`` or ``role:<name>``; the name part is percent-encoded."""
    kind, _, name = scope.partition(":")
    return f"{rule_id}|{kind}:{quote(name, safe='')}|{window_seconds}s"


def parse_charge_key(key: str) -> tuple[str, str, int]:
    """(rule id, scope, window seconds) from a key made by ``charge_key``; ValueError otherwise."""
    parts = key.split("|")
    if len(parts) != 3 or not parts[2].endswith("s") or ":" not in parts[1]:
        raise ValueError(f"not a budget key: {key!r}")
    kind, _, name = parts[1].partition(":")
    return parts[0], f"{kind}:{unquote(name)}", int(parts[2][:-1])


def _applies(rule: BudgetRule, principal: Principal, roles: Collection[str]) -> bool:
    if rule.subject == "*":
        return True
    if rule.subject.startswith("user:"):
        return rule.subject == f"user:{principal.subject}"
    return rule.subject in roles


def _scopes(rule: BudgetRule, principal: Principal) -> list[str]:
    if rule.per == "principal":
        return [f"user:{principal.subject}"]
    if rule.subject != "*":
        return [f"role:{rule.subject}"]
    direct = list(dict.fromkeys(principal.roles))
    return [f"role:{r}" for r in direct] or ["role:"]  # no roles at all still share one counter


def _amount(rule: BudgetRule, tool: str, capabilities: Sequence[Capability]) -> float:
    if rule.metric == CALLS:
        hit = rule.matches(policy_object(tool)) or any(rule.matches(c.name) for c in capabilities)
        return 1.0 if hit else 0.0
    total = 0.0
    for cap in capabilities:
        if not rule.matches(cap.name):
            continue
        for name, value in cap.amounts:
            if name != rule.metric:
                continue
            if not math.isfinite(value) or value < 0:  # fail closed: never a refund in disguise
                raise PolicyError(f"{cap.name}: amount {name}={value!r} cannot be budgeted")
            total += value
    return total


def plan_charges(
    rules: BudgetRules | Sequence[BudgetRule],
    principal: Principal,
    tool: str,
    capabilities: Sequence[Capability],
    *,
    roles: Collection[str] | Callable[[], Collection[str]] | None = None,
) -> list[Charge]:
    """Every charge this call would make. ``roles`` is the caller's effective roles (with inherited
    ones, as the policy's ``g`` lines give them), or a function giving them, called only when a
    rule would charge this call; it defaults to ``principal.roles``."""
    ordered = rules.ordered if isinstance(rules, BudgetRules) else deny_first(rules)
    effective: Collection[str] | None = None
    charges: list[Charge] = []
    for rule in ordered:
        unbudgetable: PolicyError | None = None
        try:
            amount = _amount(rule, tool, capabilities)  # cheap, and zero for most tools: checked first
        except PolicyError as exc:  # an amount that cannot be budgeted matters only if the rule applies
            amount, unbudgetable = 1.0, exc
        if amount <= 0:
            continue
        if effective is None:
            given = roles() if callable(roles) else roles
            effective = set(principal.roles if given is None else given)
        if not _applies(rule, principal, effective):
            continue
        if unbudgetable is not None:
            raise unbudgetable
        for scope in _scopes(rule, principal):
            charges.append(
                Charge(
                    rule_id=rule.id,
                    key=charge_key(rule.id, scope, rule.window_seconds),
                    amount=amount,
                    limit=rule.limit,
                    window_seconds=rule.window_seconds,
                    on_exceed=rule.on_exceed,
                    note=rule.note,
                )
            )
    return charges
