"""The budget-counter contract, run against memory and the real Redis alike.

Windows slide: no stretch of time as long as a window holds more than its limit, and spend stops
counting between one window and one window plus a slice (window / 60) after it was made.

Then what only Redis has: several replicas (separate connections) sharing one budget, key expiry,
and failing closed when the store cannot be reached.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Literal

import pytest
import redis.asyncio as aioredis

from gatekeeper.budgets import BudgetCounter, BudgetUnavailable, Charge, charge_key, open_counter
from gatekeeper.budgets.counter import slice_of, slice_seconds
from gatekeeper.errors import ConfigError

from .conftest import REDIS_URL, CounterFactory

T0 = 1_700_006_400.0  # a whole number of days (and hours, and minutes) since the epoch
HOUR = 3600


def charge(
    rule: str = "r",
    who: str = "user:a1",
    *,
    amount: float = 1.0,
    limit: float = 10.0,
    window: int = HOUR,
    on_exceed: Literal["deny", "escalate"] = "deny",
) -> Charge:
    return Charge(rule, charge_key(rule, who, window), amount, limit, window, on_exceed, f"note {rule}")


async def used(counter: BudgetCounter, c: Charge, now: float = T0) -> float:
    found = [u for u in await counter.usage(c.key, now=now) if u.key == c.key]
    return found[0].used if found else 0.0


async def test_under_the_limit_spends(counter: BudgetCounter) -> None:
    c = charge(amount=3)
    result = await counter.try_spend([c], now=T0)
    assert result.ok and result.exceeded is None
    [u] = result.usage
    assert (u.key, u.used, u.window_seconds) == (c.key, 3.0, HOUR)
    assert (u.rule_id, u.scope) == ("r", "user:a1")
    result = await counter.try_spend([c], now=T0 + 10)
    assert result.ok and result.usage[0].used == 6.0


async def test_up_to_the_limit_exactly(counter: BudgetCounter) -> None:
    c = charge(amount=5, limit=10)
    assert (await counter.try_spend([c], now=T0)).ok
    assert (await counter.try_spend([c], now=T0)).ok
    result = await counter.try_spend([charge(amount=0.5, limit=10)], now=T0)
    assert not result.ok
    assert await used(counter, c) == 10.0


async def test_float_amounts_do_not_trip_on_rounding(counter: BudgetCounter) -> None:
    for amount in (0.1, 0.2):
        assert (await counter.try_spend([charge(amount=amount, limit=0.3)], now=T0)).ok
    assert not (await counter.try_spend([charge(amount=0.001, limit=0.3)], now=T0)).ok


async def test_over_the_limit_spends_nothing_and_says_why(counter: BudgetCounter) -> None:
    assert (await counter.try_spend([charge(amount=8)], now=T0)).ok
    big = charge(amount=3)
    result = await counter.try_spend([big], now=T0 + 600)
    assert not result.ok and result.usage == ()
    assert result.exceeded is not None
    assert result.exceeded.charge == big and result.exceeded.used == 8.0
    # the 8 were spent in the minute-long slice starting at T0: they stop counting an hour after it
    assert result.exceeded.fits_at == T0 + 60 + HOUR
    assert result.exceeded.retry_after(T0 + 600) == HOUR + 60 - 600
    assert result.exceeded.reason() == "budget r exceeded: 8 used + 3 requested > limit 10 in any 1h: note r"
    assert await used(counter, big) == 8.0


async def test_one_charge_bigger_than_its_limit_never_fits(counter: BudgetCounter) -> None:
    result = await counter.try_spend([charge(amount=576, limit=200)], now=T0)
    assert not result.ok and result.exceeded is not None and result.exceeded.used == 0.0
    assert result.exceeded.fits_at == math.inf and result.exceeded.retry_after(T0) == math.inf
    assert await counter.usage("r", now=T0) == []


async def test_all_or_nothing_across_two_charges(counter: BudgetCounter) -> None:
    roomy = charge("roomy", amount=4, limit=100)
    tight = charge("tight", amount=4, limit=6)
    assert (await counter.try_spend([roomy, tight], now=T0)).ok
    result = await counter.try_spend([roomy, tight], now=T0)
    assert not result.ok and result.exceeded is not None
    assert result.exceeded.charge == tight and result.exceeded.used == 4.0
    assert await used(counter, roomy) == 4.0  # the first charge fitted, and still was not recorded
    assert await used(counter, tight) == 4.0
    # the first charge that does not fit is the one reported
    result = await counter.try_spend([charge("a", limit=0), tight], now=T0)
    assert result.exceeded is not None and result.exceeded.charge.rule_id == "a"


async def test_two_charges_on_one_counter_add_up(counter: BudgetCounter) -> None:
    c = charge(amount=6, limit=10)
    result = await counter.try_spend([c, c], now=T0)
    assert not result.ok and result.exceeded is not None and result.exceeded.used == 6.0
    assert await used(counter, c) == 0.0
    result = await counter.try_spend([charge(amount=5), charge(amount=5)], now=T0)
    assert result.ok and [u.used for u in result.usage] == [5.0, 10.0]


async def test_a_window_boundary_cannot_double_a_limit(counter: BudgetCounter) -> None:
    c = charge(amount=10, limit=10, window=60)  # slices of one second
    assert (await counter.try_spend([c], now=T0 + 59.5)).ok  # the end of an aligned minute
    for later in (T0 + 60, T0 + 60.5, T0 + 90, T0 + 119.999):  # a fixed window would have let each in
        assert not (await counter.try_spend([c], now=later)).ok
    result = await counter.try_spend([c], now=T0 + 120)  # a window after its slice [59, 60) ended
    assert result.ok and result.usage[0].used == 10.0


async def test_spend_slides_out_slice_by_slice(counter: BudgetCounter) -> None:
    c = charge(amount=1, limit=3, window=HOUR)  # slices of a minute
    for minute in (0, 10, 20):
        assert (await counter.try_spend([c], now=T0 + minute * 60 + 5)).ok
    result = await counter.try_spend([c], now=T0 + 30 * 60)
    assert not result.ok and result.exceeded is not None
    assert result.exceeded.fits_at == T0 + 60 + HOUR  # when the first minute's spend stops counting
    assert await used(counter, c, T0 + HOUR + 59) == 3.0
    assert await used(counter, c, T0 + HOUR + 60) == 2.0
    assert await used(counter, c, T0 + HOUR + 11 * 60) == 1.0
    assert (await counter.try_spend([c], now=T0 + HOUR + 60)).ok
    assert not (await counter.try_spend([c], now=T0 + HOUR + 120)).ok
    assert await used(counter, c, T0 + 3 * HOUR) == 0.0


async def test_no_window_ever_holds_more_than_the_limit(counter: BudgetCounter) -> None:
    """Random spends at random times: every stretch one window long holds at most the limit."""
    rng = random.Random(12)
    window, limit = 60, 20.0
    c = charge(limit=limit, window=window)
    now, spent = T0, list[tuple[float, float]]()
    for _ in range(300):
        now += rng.choice((0.0, 0.01, 0.4, 1.3, 7.0, 29.0))
        amount = float(rng.choice((1, 2, 5)))
        if (await counter.try_spend([charge(amount=amount, limit=limit, window=window)], now=now)).ok:
            spent.append((now, amount))
    assert len(spent) > 60
    for end, _ in spent:  # a window ending at each spend holds the most that ends there
        assert sum(a for t, a in spent if end - window < t <= end) <= limit + 1e-9
    assert await used(counter, c, now) <= limit


async def test_slices_are_a_sixtieth_of_the_window(counter: BudgetCounter) -> None:
    assert [slice_seconds(w) for w in (1, 59, 60, 90, HOUR, 86400)] == [1, 1, 1, 2, 60, 1440]
    day = charge("d", amount=10, limit=10, window=86400)
    assert (await counter.try_spend([day], now=T0 + 5 * HOUR + 17)).ok
    result = await counter.try_spend([day], now=T0 + 6 * HOUR)
    assert result.exceeded is not None
    # 5 h 17 s falls in the 24-minute slice [4 h 48 min, 5 h 12 min): it counts until a day after that
    assert result.exceeded.fits_at == T0 + 5 * HOUR + 12 * 60 + 86400


async def test_different_keys_are_separate(counter: BudgetCounter) -> None:
    a, b = charge(who="user:a", amount=10), charge(who="user:b", amount=10)
    other_window = charge(who="user:a", amount=10, window=60)
    for c in (a, b, other_window):
        assert (await counter.try_spend([c], now=T0)).ok
    assert not (await counter.try_spend([a], now=T0)).ok


async def test_refund(counter: BudgetCounter) -> None:
    c = charge(amount=10, limit=10)
    assert (await counter.try_spend([c], now=T0)).ok
    assert not (await counter.try_spend([c], now=T0 + 1)).ok
    await counter.refund([c], now=T0)  # the forward failed: give it back
    assert await used(counter, c) == 0.0
    assert (await counter.try_spend([c], now=T0 + 2)).ok


async def test_refund_never_goes_below_zero_nor_creates_counters(counter: BudgetCounter) -> None:
    c = charge(amount=3)
    assert (await counter.try_spend([charge(amount=1)], now=T0)).ok
    await counter.refund([c], now=T0)
    assert await used(counter, c) == 0.0
    assert (await counter.try_spend([charge(amount=10)], now=T0)).ok  # the full limit is there, no more
    assert not (await counter.try_spend([charge(amount=1)], now=T0)).ok
    await counter.refund([charge("never-spent")], now=T0)
    assert await counter.usage("never-spent", now=T0) == []


async def test_refund_credits_the_slice_of_its_now(counter: BudgetCounter) -> None:
    c = charge(amount=10, limit=20, window=60)
    assert (await counter.try_spend([c], now=T0)).ok
    assert (await counter.try_spend([c], now=T0 + 30)).ok
    await counter.refund([c], now=T0)  # the first call's slice; the second call keeps its spend
    assert await used(counter, c, T0 + 31) == 10.0
    await counter.refund([c], now=T0 + 45)  # nothing was spent in that slice: nothing to take back
    assert await used(counter, c, T0 + 46) == 10.0


async def test_exempt_rules_are_recorded_without_the_check(counter: BudgetCounter) -> None:
    esc = charge("esc", amount=30, limit=24, on_exceed="escalate")
    role = charge("role", who="role:agent", amount=30, limit=200)
    assert not (await counter.try_spend([role, esc], now=T0)).ok
    result = await counter.try_spend([role, esc], now=T0, exempt={"esc"})
    assert result.ok and [u.used for u in result.usage] == [30.0, 30.0]
    big_role = charge("role", who="role:agent", amount=180, limit=200)
    result = await counter.try_spend([big_role, esc], now=T0, exempt={"esc"})
    assert not result.ok and result.exceeded is not None and result.exceeded.charge.rule_id == "role"
    assert await used(counter, esc) == 30.0


async def test_no_charges_is_ok(counter: BudgetCounter) -> None:
    result = await counter.try_spend([], now=T0)
    assert result.ok and result.usage == ()
    await counter.refund([], now=T0)


async def test_usage_by_rule_prefix_and_all(counter: BudgetCounter) -> None:
    spends = [
        charge("gpu", "user:a", amount=2),
        charge("gpu", "user:b", amount=3),
        charge("gpu-role", "role:agent", amount=5, limit=200),
        charge("shell", "user:a", amount=1),
    ]
    assert (await counter.try_spend(spends, now=T0)).ok
    gpu = await counter.usage("gpu", now=T0 + 1)
    assert [(u.scope, u.used) for u in gpu] == [("user:a", 2.0), ("user:b", 3.0)]
    assert [u.rule_id for u in await counter.usage("gpu-role", now=T0)] == ["gpu-role"]
    assert [u.used for u in await counter.usage(charge("gpu", "user:b").key, now=T0)] == [3.0]
    assert len(await counter.usage("gpu|user:", now=T0)) == 2
    assert len(await counter.usage("", now=T0)) == 4
    assert len(await counter.usage("", now=T0 + HOUR)) == 4  # spent in [T0, T0 + 60): still counting
    assert await counter.usage("", now=T0 + HOUR + 60) == []  # now it no longer is


async def test_usage_counts_the_window_ending_then(counter: BudgetCounter) -> None:
    c = charge(amount=1, window=60)
    assert (await counter.try_spend([c], now=T0)).ok
    assert (await counter.try_spend([c, c], now=T0 + 30)).ok
    assert [u.used for u in await counter.usage("r", now=T0 + 60.5)] == [3.0]
    [u] = await counter.usage("r", now=T0 + 61)
    assert (u.used, u.window_seconds) == (2.0, 60)
    assert await counter.usage("r", now=T0 + 91) == []


async def test_unusual_subjects_stay_apart(counter: BudgetCounter) -> None:
    odd = charge(who="user:a*b?[c]\\d|e@f", amount=10)
    plain = charge(who="user:a", amount=10)
    assert (await counter.try_spend([odd], now=T0)).ok
    assert (await counter.try_spend([plain], now=T0)).ok
    assert [u.scope for u in await counter.usage(odd.key, now=T0)] == ["user:a*b?[c]\\d|e@f"]


async def test_concurrent_spends_never_overspend(make_counter: CounterFactory) -> None:
    """200 concurrent spends of 1 against a limit of 50: exactly 50 win, on two 'replicas'."""
    first, second = make_counter(), make_counter()
    await first.open()
    await second.open()
    try:
        c = charge(amount=1, limit=50)
        results = await asyncio.gather(
            *(((first, second)[i % 2]).try_spend([c], now=T0 + i / 1000) for i in range(200))
        )
        assert sum(r.ok for r in results) == 50
        assert await used(first, c) == 50.0 and await used(second, c) == 50.0
        losers = [r.exceeded for r in results if not r.ok]
        assert all(e is not None and e.used == 50.0 for e in losers)
    finally:
        await first.close()
        await second.close()


async def test_concurrent_spends_are_all_or_nothing(make_counter: CounterFactory) -> None:
    first, second = make_counter(), make_counter()
    await first.open()
    await second.open()
    try:
        roomy, tight = charge("roomy", limit=1000), charge("tight", limit=30)
        results = await asyncio.gather(
            *(((first, second)[i % 2]).try_spend([roomy, tight], now=T0) for i in range(200))
        )
        assert sum(r.ok for r in results) == 30
        assert await used(first, roomy) == 30.0 and await used(first, tight) == 30.0
    finally:
        await first.close()
        await second.close()


async def test_concurrent_spends_on_one_counter(counter: BudgetCounter) -> None:
    c = charge(amount=1, limit=50)
    results = await asyncio.gather(*(counter.try_spend([c], now=T0) for _ in range(200)))
    assert sum(r.ok for r in results) == 50


# -- Redis only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_counter_is_a_hash_of_slices_that_expires(
    counter: BudgetCounter, redis_prefix: str
) -> None:
    c = charge(amount=1, window=60)
    assert (await counter.try_spend([c], now=T0 + 30)).ok
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
        assert keys == [f"{redis_prefix}{c.key}"]
        assert await client.hgetall(keys[0]) == {str(slice_of(T0 + 30, 60)): "1"}
        ttl = await client.ttl(keys[0])
        assert 60 < ttl <= 61 + 60  # until its slice stops counting, plus a minute's grace
        await counter.refund([c], now=T0 + 30)
        assert await client.hgetall(keys[0]) == {str(slice_of(T0 + 30, 60)): "0"}
        assert 60 < await client.ttl(keys[0]) <= 121
        assert (await counter.try_spend([c], now=T0 + 200)).ok  # the old slice is dropped as it is read
        assert await client.hgetall(keys[0]) == {str(slice_of(T0 + 200, 60)): "1"}
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_fixed_window_keys_from_before_are_ignored(
    counter: BudgetCounter, redis_prefix: str
) -> None:
    c = charge(amount=4, window=60)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.set(f"{redis_prefix}{c.key}@{int(T0)}", "9", ex=120)  # the old counter layout
        assert (await counter.try_spend([c], now=T0)).ok
        assert [u.used for u in await counter.usage("", now=T0)] == [4.0]
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_unreachable_fails_closed(backend: str) -> None:
    from gatekeeper.budgets.redis import RedisBudgetCounter

    down = RedisBudgetCounter("redis://:secret@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(BudgetUnavailable) as info:
        await down.open()
    assert "secret" not in info.value.message and info.value.code == "budget_unavailable"
    with pytest.raises(BudgetUnavailable, match="not open"):
        await down.try_spend([charge()], now=T0)


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_going_away_fails_closed(counter: BudgetCounter) -> None:
    await counter.close()
    with pytest.raises(BudgetUnavailable):
        await counter.try_spend([charge()], now=T0)
    with pytest.raises(BudgetUnavailable):
        await counter.usage("", now=T0)


# -- choosing a counter ----------------------------------------------------------------------------


def test_open_counter_chooses() -> None:
    from gatekeeper.budgets.memory import MemoryBudgetCounter
    from gatekeeper.budgets.redis import RedisBudgetCounter

    assert isinstance(open_counter("memory"), MemoryBudgetCounter)
    made = open_counter("redis://127.0.0.1:6379/0")
    assert isinstance(made, RedisBudgetCounter) and made.prefix == "gatekeeper:budget:"
    assert isinstance(open_counter("rediss://h:6380/1"), RedisBudgetCounter)
    for bad in ("", "postgres://x", "redis", "mem"):
        with pytest.raises(ConfigError, match=r"budgets\.store"):
            open_counter(bad)
    with pytest.raises(ConfigError) as info:
        open_counter("http://user:pw@host/")
    assert "pw" not in info.value.message
