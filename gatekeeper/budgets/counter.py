"""The one interface both budget counters (memory, Redis) implement.

Windows are **fixed windows aligned to the window size**: a charge with a one-day window lands
in the counter for ``[floor(now / 86400) * 86400, +86400)`` (UTC days; hours on the hour).
A caller can therefore spend up to twice a limit across a window boundary (the end of one
window and the start of the next); in exchange a check-and-spend is one cheap atomic step.

``try_spend`` is all-or-nothing and atomic: either every charge fits and all are recorded, or
none is. Concurrent callers — tasks in one process, or several replicas sharing one Redis —
can never spend past a limit together.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from ..errors import Unavailable
from .plan import Charge, parse_charge_key

__all__ = [
    "EPSILON",
    "BudgetCounter",
    "BudgetUnavailable",
    "Exceeded",
    "SpendResult",
    "Usage",
    "fits",
    "window_start",
]

# Amounts are floats (GPU-hours); 0.1 + 0.2 must not exceed a limit of 0.3.
EPSILON: Final = 1e-9


class BudgetUnavailable(Unavailable):
    """The budget store cannot be reached or answered nonsense: the call must be refused."""

    code = "budget_unavailable"


def window_start(now: float, window_seconds: int) -> int:
    """Start (epoch seconds) of the fixed window that contains ``now``."""
    return int(now // window_seconds) * window_seconds


def span(seconds: int) -> str:
    """``86400`` -> ``1d``, ``7200`` -> ``2h``, ``90`` -> ``90s``: windows as budgets.yaml writes them."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fits(used: float, amount: float, limit: float) -> bool:
    return used + amount <= limit + EPSILON


@dataclass(frozen=True, slots=True)
class Usage:
    """How much of one counter is used in one window."""

    key: str  # the charge key (see plan.charge_key), without the window bucket
    used: float
    window_start: int
    window_seconds: int
    rule_id: str = field(init=False)
    scope: str = field(init=False)  # "user:<sub>" or "role:<name>"

    def __post_init__(self) -> None:
        rule_id, scope, _ = parse_charge_key(self.key)
        object.__setattr__(self, "rule_id", rule_id)
        object.__setattr__(self, "scope", scope)

    @property
    def window_end(self) -> int:
        return self.window_start + self.window_seconds


@dataclass(frozen=True, slots=True)
class Exceeded:
    """The first charge that did not fit, and what its counter held before it."""

    charge: Charge
    used: float  # in the current window, before this call (including earlier charges of it)
    window_start: int

    @property
    def window_end(self) -> int:
        return self.window_start + self.charge.window_seconds

    def retry_after(self, now: float) -> float:
        """Seconds until the window rolls over (the earliest the call could fit again)."""
        return max(0.0, self.window_end - now)

    def reason(self) -> str:
        """One sentence for the agent and the operator."""
        c = self.charge
        text = (
            f"budget {c.rule_id} exceeded: {self.used:g} used + {c.amount:g} requested > limit {c.limit:g}"
            f" per {span(c.window_seconds)}"
        )
        return f"{text}: {c.note}" if c.note else text


@dataclass(frozen=True, slots=True)
class SpendResult:
    ok: bool
    usage: tuple[Usage, ...] = ()  # when ok: each charge's counter after spending, in charge order
    exceeded: Exceeded | None = None  # when not ok


class BudgetCounter(Protocol):
    async def open(self) -> None:
        """Connect (and load scripts); idempotent."""
        ...

    async def close(self) -> None: ...

    async def try_spend(
        self, charges: Sequence[Charge], *, now: float, exempt: Collection[str] = ()
    ) -> SpendResult:
        """Record every charge if every one fits under its limit in its current window; else none.

        Charges whose ``rule_id`` is in ``exempt`` are recorded without the limit check (an operator
        approved going past that budget); other charges are still checked. An empty ``charges``
        is ok. Raises ``BudgetUnavailable`` when the store cannot answer: refuse the call.
        """
        ...

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        """Take back charges spent by ``try_spend`` (the call could not be forwarded).

        Pass the same ``now`` given to ``try_spend`` so the same windows are credited; a counter
        never goes below 0, and a window already expired is left alone.
        """
        ...

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        """Live counters (current windows at ``now``) whose key starts with ``key_prefix_or_rule``.

        A bare rule id (no ``|``) means that rule's counters; ``""`` means all. Sorted by key.
        """
        ...


def usage_prefix(key_prefix_or_rule: str) -> str:
    """A bare rule id becomes ``<id>|`` so ``gpu`` does not also list ``gpu-role``."""
    if key_prefix_or_rule and "|" not in key_prefix_or_rule:
        return key_prefix_or_rule + "|"
    return key_prefix_or_rule


def bucket_key(charge_key: str, start: int) -> str:
    return f"{charge_key}@{start}"


def split_bucket_key(full: str) -> tuple[str, int]:
    key, _, start = full.rpartition("@")
    return key, int(start)
