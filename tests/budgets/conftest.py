"""Budget-counter fixtures: every contract test runs against memory and the machine's real Redis.

Each Redis test gets its own key prefix and deletes its keys afterwards. Never mocked: no Redis
at 127.0.0.1:6379, no pass.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatekeeper.budgets import BudgetCounter

from ..helpers import opened

REDIS_URL = "redis://127.0.0.1:6379/0"

CounterFactory = Callable[[], BudgetCounter]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def redis_prefix(backend: str) -> AsyncIterator[str]:
    """A fresh key prefix; every key under it is deleted after the test ("" for memory)."""
    if backend != "redis":
        yield ""
        return
    prefix = f"gk-test:budget:{secrets.token_hex(6)}:"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is required: {exc}")
    try:
        yield prefix
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def make_counter(backend: str, redis_prefix: str) -> AsyncIterator[CounterFactory]:
    """Builds unopened counters that share one budget: one memory counter, or one Redis key prefix
    (each Redis counter its own connection pool, like a separate replica)."""
    if backend == "memory":
        from gatekeeper.budgets.memory import MemoryBudgetCounter

        shared = MemoryBudgetCounter()
        yield lambda: shared
        return
    from gatekeeper.budgets.redis import RedisBudgetCounter

    yield lambda: RedisBudgetCounter(REDIS_URL, prefix=redis_prefix)


@pytest.fixture
async def counter(make_counter: CounterFactory) -> AsyncIterator[BudgetCounter]:
    async with opened(make_counter()) as instance:
        yield instance
