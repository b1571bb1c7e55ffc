"""Budgets: how much a principal or a role may spend per time window, checked and spent atomically.

Rules come from ``policies/budgets.yaml`` (see ``rules``); a call's charges are planned purely
(see ``plan``) and spent on a counter, in memory or in Redis (see ``counter``)::

    rules = load_budget_rules(Path("policies/budgets.yaml"))
    counter = open_counter("memory")  # or "redis://host:6379/0"
    await counter.open()
    charges = plan_charges(rules, principal, tool, capabilities)
    result = await counter.try_spend(charges, now=time.time())
    if not result.ok: ...  # result.exceeded names the rule
"""

from __future__ import annotations

from ..errors import ConfigError
from .counter import BudgetCounter, BudgetUnavailable, Exceeded, SpendResult, Usage
from .plan import Charge, charge_key, parse_charge_key, plan_charges
from .rules import BudgetRule, BudgetRules, load_budget_rules, parse_window

__all__ = [
    "BudgetCounter",
    "BudgetRule",
    "BudgetRules",
    "BudgetUnavailable",
    "Charge",
    "Exceeded",
    "SpendResult",
    "Usage",
    "charge_key",
    "load_budget_rules",
    "open_counter",
    "parse_charge_key",
    "parse_window",
    "plan_charges",
]

ACCEPTED = "'memory' (one process), or a redis://, rediss:// or unix:// URL (a fleet sharing one Redis)"


def open_counter(url_or_kind: str, *, prefix: str = "gatekeeper:budget:") -> BudgetCounter:
    """Build (not yet open) the counter named by ``url_or_kind``; call ``await counter.open()`` next."""
    value = (url_or_kind or "").strip()
    if value == "memory":
        from .memory import MemoryBudgetCounter

        return MemoryBudgetCounter()
    if value.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisBudgetCounter

        return RedisBudgetCounter(value, prefix=prefix)
    shown = value if "@" not in value else value.split("://", 1)[0] + "://…"
    raise ConfigError(f"budgets.store: {shown!r} is not understood; use {ACCEPTED}", key="budgets.store")
