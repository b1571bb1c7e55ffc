"""Budget counters in this process's memory: for one replica (or tests).

Every operation runs without awaiting in between, so on one event loop it is atomic; a lock
also keeps it correct if several threads share the counter. Windows that have ended are
dropped as time (the ``now`` callers pass) moves on.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence

from .counter import (
    Exceeded,
    SpendResult,
    Usage,
    bucket_key,
    fits,
    split_bucket_key,
    usage_prefix,
    window_start,
)
from .plan import Charge, parse_charge_key

__all__ = ["MemoryBudgetCounter"]

_SWEEP_EVERY = 60.0  # seconds of `now` between sweeps of ended windows


class MemoryBudgetCounter:
    def __init__(self) -> None:
        self._used: dict[str, tuple[float, float]] = {}  # bucket key -> (used, window end)
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
        for key in [k for k, (_, end) in self._used.items() if end <= now]:
            del self._used[key]

    def _current(self, key: str, now: float) -> float:
        entry = self._used.get(key)
        return entry[0] if entry is not None and entry[1] > now else 0.0

    async def try_spend(
        self, charges: Sequence[Charge], *, now: float, exempt: Collection[str] = ()
    ) -> SpendResult:
        with self._lock:
            self._sweep(now)
            pending: dict[str, float] = {}
            planned: list[tuple[Charge, str, int]] = []
            for charge in charges:
                start = window_start(now, charge.window_seconds)
                key = bucket_key(charge.key, start)
                used = pending[key] if key in pending else self._current(key, now)
                if charge.rule_id not in exempt and not fits(used, charge.amount, charge.limit):
                    return SpendResult(ok=False, exceeded=Exceeded(charge, used, start))
                pending[key] = used + charge.amount
                planned.append((charge, key, start))
            usage: list[Usage] = []
            for charge, key, start in planned:
                used = self._current(key, now) + charge.amount
                self._used[key] = (used, start + charge.window_seconds)
                usage.append(Usage(charge.key, used, start, charge.window_seconds))
            return SpendResult(ok=True, usage=tuple(usage))

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        with self._lock:
            for charge in charges:
                key = bucket_key(charge.key, window_start(now, charge.window_seconds))
                entry = self._used.get(key)
                if entry is None or entry[1] <= now:
                    continue
                self._used[key] = (max(0.0, entry[0] - charge.amount), entry[1])

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        prefix = usage_prefix(key_prefix_or_rule)
        found: list[Usage] = []
        with self._lock:
            for full, (used, end) in self._used.items():
                if end <= now or not full.startswith(prefix):
                    continue
                key, start = split_bucket_key(full)
                if start > now:  # a window in the future (a caller's clock went back): not current
                    continue
                found.append(Usage(key, used, start, parse_charge_key(key)[2]))
        return sorted(found, key=lambda u: u.key)
