"""Budget counters in Redis, shared by every replica of a fleet.

Each ``try_spend`` is ONE Lua script: it reads every counter, and only if every charge fits does
it ``INCRBYFLOAT`` and ``EXPIRE`` them all. Redis runs a script without interleaving any other
command, so replicas spending concurrently can never go past a limit together.

Keys are ``<prefix><charge key>@<window start>`` holding the amount used as a decimal string;
each expires a minute after its window ends. A script touches several keys, so on Redis Cluster
give the prefix a hash tag (``{gatekeeper:budget}:``) to keep them in one slot.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .counter import (
    EPSILON,
    BudgetUnavailable,
    Exceeded,
    SpendResult,
    Usage,
    bucket_key,
    split_bucket_key,
    usage_prefix,
    window_start,
)
from .plan import Charge, parse_charge_key

__all__ = ["RedisBudgetCounter"]

GRACE_SECONDS: Final = 60  # a key outlives its window by this much (replicas' clocks differ a little)

# KEYS[i]: bucket keys. ARGV[1]: epsilon; then per charge i: amount, limit, exempt (0/1), ttl seconds.
# Returns {1, used_after_1, ..., used_after_n} or {0, index of the first charge that did not fit, used}.
_SPEND: Final = """
local eps = tonumber(ARGV[1])
local pending = {}
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 4
  local amount = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local used = pending[KEYS[i]]
  if used == nil then
    used = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if ARGV[base + 3] ~= '1' and used + amount > limit + eps then
    return {0, i, string.format('%.17g', used)}
  end
  pending[KEYS[i]] = used + amount
end
local out = {1}
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 4
  out[#out + 1] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[base + 1])
  redis.call('EXPIRE', KEYS[i], ARGV[base + 4])
end
return out
"""

# KEYS[i]: bucket keys; ARGV[i]: amount to take back. Missing (expired) keys are left alone;
# a counter never goes below 0 and keeps its expiry.
_REFUND: Final = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local left = tonumber(redis.call('INCRBYFLOAT', KEYS[i], '-' .. ARGV[i]))
    if left < 0 then
      redis.call('SET', KEYS[i], '0', 'KEEPTTL')
    end
  end
end
return #KEYS
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)


def _number(value: float) -> str:
    return repr(float(value))


def _shown(url: str) -> str:
    return url if "@" not in url else url.split("://", 1)[0] + "://…"  # never echo a password


class RedisBudgetCounter:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gatekeeper:budget:",
        timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout = timeout
        self._max_connections = max_connections
        self._client: aioredis.Redis | None = None
        self._spend: Any = None
        self._refund: Any = None

    async def open(self) -> None:
        if self._client is not None:
            return
        # A blocking pool: a burst of calls waits (up to the timeout) for a connection, not fails.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            max_connections=self._max_connections,
            timeout=self._timeout,
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise BudgetUnavailable(f"budget store {_shown(self.url)} is unreachable: {exc}") from None
        self._client = client
        self._spend = client.register_script(_SPEND)
        self._refund = client.register_script(_REFUND)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _require(self) -> aioredis.Redis:
        if self._client is None:
            raise BudgetUnavailable("the budget store is not open")
        return self._client

    async def try_spend(
        self, charges: Sequence[Charge], *, now: float, exempt: Collection[str] = ()
    ) -> SpendResult:
        self._require()
        if not charges:
            return SpendResult(ok=True)
        keys: list[str] = []
        args: list[str] = [_number(EPSILON)]
        starts: list[int] = []
        for charge in charges:
            start = window_start(now, charge.window_seconds)
            ttl = max(1, math.ceil(start + charge.window_seconds - now)) + GRACE_SECONDS
            starts.append(start)
            keys.append(self.prefix + bucket_key(charge.key, start))
            args += [
                _number(charge.amount),
                _number(charge.limit),
                "1" if charge.rule_id in exempt else "0",
                str(ttl),
            ]
        try:
            reply = await self._spend(keys=keys, args=args)
            if reply[0] == 1:
                used = [float(v) for v in reply[1:]]
                if len(used) != len(charges):
                    raise ValueError(f"expected {len(charges)} counters, got {len(used)}")
                usage = tuple(
                    Usage(c.key, u, s, c.window_seconds)
                    for c, u, s in zip(charges, used, starts, strict=True)
                )
                return SpendResult(ok=True, usage=usage)
            index = int(reply[1]) - 1
            charge = charges[index]
            return SpendResult(ok=False, exceeded=Exceeded(charge, float(reply[2]), starts[index]))
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None
        except (ValueError, TypeError, IndexError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} answered oddly: {exc}") from None

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        self._require()
        if not charges:
            return
        keys = [self.prefix + bucket_key(c.key, window_start(now, c.window_seconds)) for c in charges]
        try:
            await self._refund(keys=keys, args=[_number(c.amount) for c in charges])
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        client = self._require()
        pattern = _glob_escape(self.prefix + usage_prefix(key_prefix_or_rule)) + "*"
        try:
            full_keys = [k async for k in client.scan_iter(match=pattern, count=500)]
            values = await client.mget(full_keys) if full_keys else []
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None
        found: list[Usage] = []
        for full, value in zip(full_keys, values, strict=True):
            if value is None:
                continue  # expired between SCAN and MGET
            try:
                key, start = split_bucket_key(full[len(self.prefix) :])
                window = parse_charge_key(key)[2]
                used = float(value)
            except ValueError:
                continue  # not ours
            if start <= now < start + window:
                found.append(Usage(key, used, start, window))
        return sorted(found, key=lambda u: u.key)
