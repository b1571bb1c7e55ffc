"""Budget counters in this process's memory: for one replica (or tests).

Every operation runs without awaiting in between, so on one event loop it is atomic; a lock
also keeps it correct if several threads share the counter. Each counter is its slices (see
``counter``); slices that stopped counting are dropped as time (the ``now`` callers pass) moves on.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence

from .counter import (
    Exceeded,
    SpendResult,
    Usage,
    fits,
    fits_again_at,
    oldest_live_slice,
    slice_ends_counting,
    slice_of,
    usage_prefix,
)
from .plan import Charge, parse_charge_key

__all__ = ["MemoryBudgetCounter"]

_SWEEP_EVERY = 60.0  # seconds of `now` between sweeps of counters whose every slice has ended


class MemoryBudgetCounter:
    def __init__(self) -> None:
        self._slices: dict[str, dict[int, float]] = {}  # charge key -> slice index -> amount
        self._ends: dict[str, float] = {}  # charge key -> when its last slice stops counting
        self._lock = threading.Lock()
        self._next_sweep = float("-inf")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for key in [k for k, end in self._ends.items() if end <= now]:
            del self._ends[key]
            self._slices.pop(key, None)

    def _live(self, key: str, now: float, window_seconds: int) -> dict[int, float]:
        """The counter's slices that count at ``now`` (older ones are dropped); empty if none."""
        slices = self._slices.get(key)
        if not slices:
            return {}
        oldest = oldest_live_slice(now, window_seconds)
        for index in [i for i in slices if i < oldest]:
            del slices[index]
        return slices

    async def try_spend(
        self, charges: Sequence[Charge], *, now: float, exempt: Collection[str] = ()
    ) -> SpendResult:
        with self._lock:
            self._sweep(now)
            stored: dict[str, float] = {}
            used_by_key: dict[str, float] = {}
            for charge in charges:
                key = charge.key
                if key not in used_by_key:
                    stored[key] = used_by_key[key] = sum(self._live(key, now, charge.window_seconds).values())
                used = used_by_key[key]
                if charge.rule_id not in exempt and not fits(used, charge.amount, charge.limit):
                    live = self._live(key, now, charge.window_seconds).items()
                    at = fits_again_at(live, used - stored[key], charge)
                    return SpendResult(ok=False, exceeded=Exceeded(charge, used, at))
                used_by_key[key] = used + charge.amount
            usage: list[Usage] = []
            for charge in charges:
                key, window = charge.key, charge.window_seconds
                index = slice_of(now, window)
                slices = self._slices.setdefault(key, {})
                slices[index] = slices.get(index, 0.0) + charge.amount
                self._ends[key] = max(self._ends.get(key, now), slice_ends_counting(index, window))
                stored[key] += charge.amount
                usage.append(Usage(key, stored[key], window))
            return SpendResult(ok=True, usage=tuple(usage))

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        with self._lock:
            for charge in charges:
                slices = self._slices.get(charge.key)
                index = slice_of(now, charge.window_seconds)
                if slices is None or index not in slices:
                    continue
                slices[index] = max(0.0, slices[index] - charge.amount)

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        prefix = usage_prefix(key_prefix_or_rule)
        found: list[Usage] = []
        with self._lock:
            for key, slices in self._slices.items():
                if not key.startswith(prefix):
                    continue
                window = parse_charge_key(key)[2]
                oldest = oldest_live_slice(now, window)  # only looking: a reader never drops slices
                live = [amount for index, amount in slices.items() if index >= oldest]
                if live:
                    found.append(Usage(key, sum(live), window))
        return sorted(found, key=lambda u: u.key)
