"""The one interface both budget counters (memory, Redis) implement.

Windows **slide**: a charge counts against its limit for a whole window after it was made, so no
stretch of time as long as the window ever holds more than the limit. (Fixed windows let a
caller spend a limit at the end of one window and again at the start of the next: twice the
limit in a moment.)

A counter keeps each budget's spend in slices of ``window / SLICES`` seconds (a one-day window in
24-minute slices) and counts a slice while any part of it is inside the window that ends now. A
charge therefore stops counting between one window and one window plus one slice after it was
made: never early, at most a slice late. In exchange a check-and-spend stays one cheap atomic
step over at most ``SLICES + 1`` numbers per counter, however many calls were made.

``try_spend`` is all-or-nothing and atomic: either every charge fits and all are recorded, or
none is. Concurrent callers — tasks in one process, or several replicas sharing one Redis —
can never spend past a limit together.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from ..errors import BudgetUnavailable
from .plan import Charge, parse_charge_key

__all__ = [
    "EPSILON",
    "SLICES",
    "BudgetCounter",
    "BudgetUnavailable",
    "Exceeded",
    "SpendResult",
    "Usage",
    "fits",
    "fits_again_at",
    "oldest_live_slice",
    "slice_ends_counting",
    "slice_of",
    "slice_seconds",
]

# Amounts are floats (GPU-hours); 0.1 + 0.2 must not exceed a limit of 0.3.
EPSILON: Final = 1e-9
# Slices per window: how late (window / SLICES at most) a charge stops counting.
SLICES: Final = 60


def slice_seconds(window_seconds: int) -> int:
    """The length of one slice of a window: a whole number of seconds, at least one."""
    return max(1, -(-window_seconds // SLICES))


def slice_of(now: float, window_seconds: int) -> int:
    """The slice (counted from the epoch) that a charge made at ``now`` is kept in."""
    return int(now // slice_seconds(window_seconds))


def oldest_live_slice(now: float, window_seconds: int) -> int:
    """The oldest slice still counted at ``now``: the one holding the instant a window ago.
    Every later slice counts, later than ``now``'s own too (another replica's clock ran ahead)."""
    return int((now - window_seconds) // slice_seconds(window_seconds))


def slice_ends_counting(index: int, window_seconds: int) -> float:
    """When slice ``index`` stops counting: a window after the slice ends."""
    return (index + 1) * slice_seconds(window_seconds) + window_seconds


def span(seconds: int) -> str:
    """``86400`` -> ``1d``, ``7200`` -> ``2h``, ``90`` -> ``90s``: windows as budgets.yaml writes them."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fits(used: float, amount: float, limit: float) -> bool:
    return used + amount <= limit + EPSILON


def fits_again_at(slices: Iterable[tuple[int, float]], pending: float, charge: Charge) -> float:
    """The earliest time ``charge`` fits again as the live ``slices`` stop counting, oldest first;
    ``pending`` is what earlier charges of the same call add to the same counter. ``inf``: never."""
    needed = pending + charge.amount
    if not fits(0.0, needed, charge.limit):
        return math.inf
    ordered = sorted(slices)
    left = sum(amount for _, amount in ordered)
    for index, amount in ordered:
        left -= amount
        if fits(left, needed, charge.limit):
            return slice_ends_counting(index, charge.window_seconds)
    return slice_ends_counting(ordered[-1][0], charge.window_seconds) if ordered else -math.inf


@dataclass(frozen=True, slots=True)
class Usage:
    """How much of one counter is used in the window that ends at the time asked about."""

    key: str  # the charge key (see plan.charge_key)
    used: float
    window_seconds: int
    rule_id: str = field(init=False)
    scope: str = field(init=False)  # "user:<sub>" or "role:<name>"

    def __post_init__(self) -> None:
        rule_id, scope, _ = parse_charge_key(self.key)
        object.__setattr__(self, "rule_id", rule_id)
        object.__setattr__(self, "scope", scope)


@dataclass(frozen=True, slots=True)
class Exceeded:
    """The first charge that did not fit, and what its counter held before it."""

    charge: Charge
    used: float  # in the window ending now, before this call (including earlier charges of it)
    fits_at: float  # the earliest time it could fit, as older spend stops counting; inf: never

    def retry_after(self, now: float) -> float:
        """Seconds until the call could fit again (``inf`` when it is bigger than the limit)."""
        return max(0.0, self.fits_at - now)

    def reason(self) -> str:
        """One sentence for the agent and the operator."""
        c = self.charge
        text = (
            f"budget {c.rule_id} exceeded: {self.used:g} used + {c.amount:g} requested > limit {c.limit:g}"
            f" in any {span(c.window_seconds)}"
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
        """Record every charge if every one fits under its limit in the window ending at ``now``; else none.

        Charges whose ``rule_id`` is in ``exempt`` are recorded without the limit check (an operator
        approved going past that budget); other charges are still checked. An empty ``charges``
        is ok. Raises ``BudgetUnavailable`` when the store cannot answer: refuse the call.
        """
        ...

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        """Take back charges spent by ``try_spend`` (the call could not be forwarded).

        Pass the same ``now`` given to ``try_spend`` so the same slices are credited; a counter
        never goes below 0, and a slice no longer kept is left alone.
        """
        ...

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        """Counters with spend in the window ending at ``now`` whose key starts with ``key_prefix_or_rule``.

        A bare rule id (no ``|``) means that rule's counters; ``""`` means all. Sorted by key.
        """
        ...


def usage_prefix(key_prefix_or_rule: str) -> str:
    """A bare rule id becomes ``<id>|`` so ``gpu`` does not also list ``gpu-role``."""
    if key_prefix_or_rule and "|" not in key_prefix_or_rule:
        return key_prefix_or_rule + "|"
    return key_prefix_or_rule
