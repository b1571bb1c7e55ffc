"""Budget counters in Redis, shared by every replica of a fleet.

Each ``try_spend`` is ONE Lua script: it reads every counter, and only if every charge fits does
it add them all. Redis runs a script without interleaving any other command, so replicas
spending concurrently can never go past a limit together.

A counter is a hash at ``<prefix><charge key>``: one field per slice of its sliding window (see
``counter``), the slice's number to the amount spent in it as a decimal string. The script drops
slices that stopped counting as it reads them, and the key expires a minute after its newest
slice stops counting. A script touches several keys, so on Redis Cluster give the prefix a hash
tag (``{gatekeeper:budget}:``) to keep them in one slot.
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
    fits_again_at,
    oldest_live_slice,
    slice_ends_counting,
    slice_of,
    usage_prefix,
)
from .plan import Charge, parse_charge_key

__all__ = ["RedisBudgetCounter"]

GRACE_SECONDS: Final = 60  # a key outlives its last slice by this much (replicas' clocks differ a little)

# KEYS[i]: counter hashes. ARGV[1]: epsilon; then per charge i: amount, limit, exempt (0/1),
# the slice it lands in, the oldest slice still counting, ttl seconds.
# Returns {1, used_after_1, ..., used_after_n}, or {0, index of the first charge that did not
# fit, used, slice, amount, slice, amount, ...} with that counter's live slices.
_SPEND: Final = """
local eps = tonumber(ARGV[1])
local stored, used = {}, {}
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 6
  local key = KEYS[i]
  if used[key] == nil then
    local oldest = tonumber(ARGV[base + 5])
    local total, stale = 0, {}
    local fields = redis.call('HGETALL', key)
    for j = 1, #fields, 2 do
      if tonumber(fields[j]) < oldest then
        stale[#stale + 1] = fields[j]
      else
        total = total + tonumber(fields[j + 1])
      end
    end
    if #stale > 0 then
      redis.call('HDEL', key, unpack(stale))
    end
    stored[key], used[key] = total, total
  end
  local amount = tonumber(ARGV[base + 1])
  if ARGV[base + 3] ~= '1' and used[key] + amount > tonumber(ARGV[base + 2]) + eps then
    local out = {0, i, string.format('%.17g', used[key])}
    local fields = redis.call('HGETALL', key)
    for j = 1, #fields do
      out[#out + 1] = fields[j]
    end
    return out
  end
  used[key] = used[key] + amount
end
local out = {1}
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 6
  local key = KEYS[i]
  redis.call('HINCRBYFLOAT', key, ARGV[base + 4], ARGV[base + 1])
  stored[key] = stored[key] + tonumber(ARGV[base + 1])
  out[#out + 1] = string.format('%.17g', stored[key])
  local ttl = tonumber(ARGV[base + 6])
  if redis.call('TTL', key) < ttl then
    redis.call('EXPIRE', key, ttl)
  end
end
return out
"""

# KEYS[i]: counter hashes; ARGV: per key the slice and the amount to take back. A slice no
# longer kept is left alone; a slice never goes below 0, and the key keeps its expiry.
_REFUND: Final = """
for i = 1, #KEYS do
  local slice = ARGV[2 * i - 1]
  if redis.call('HEXISTS', KEYS[i], slice) == 1 then
    local left = tonumber(redis.call('HINCRBYFLOAT', KEYS[i], slice, '-' .. ARGV[2 * i]))
    if left < 0 then
      redis.call('HSET', KEYS[i], slice, '0')
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
        for charge in charges:
            window = charge.window_seconds
            index = slice_of(now, window)
            ttl = max(1, math.ceil(slice_ends_counting(index, window) - now)) + GRACE_SECONDS
            keys.append(self.prefix + charge.key)
            args += [
                _number(charge.amount),
                _number(charge.limit),
                "1" if charge.rule_id in exempt else "0",
                str(index),
                str(oldest_live_slice(now, window)),
                str(ttl),
            ]
        try:
            reply = await self._spend(keys=keys, args=args)
            if reply[0] == 1:
                used = [float(v) for v in reply[1:]]
                if len(used) != len(charges):
                    raise ValueError(f"expected {len(charges)} counters, got {len(used)}")
                usage = tuple(Usage(c.key, u, c.window_seconds) for c, u in zip(charges, used, strict=True))
                return SpendResult(ok=True, usage=usage)
            charge = charges[int(reply[1]) - 1]
            used_before = float(reply[2])
            fields = reply[3:]
            slices = [(int(fields[j]), float(fields[j + 1])) for j in range(0, len(fields) - 1, 2)]
            stored = sum(amount for _, amount in slices)
            at = fits_again_at(slices, max(0.0, used_before - stored), charge)
            return SpendResult(ok=False, exceeded=Exceeded(charge, used_before, at))
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None
        except (ValueError, TypeError, IndexError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} answered oddly: {exc}") from None

    async def refund(self, charges: Sequence[Charge], *, now: float) -> None:
        self._require()
        if not charges:
            return
        keys = [self.prefix + c.key for c in charges]
        args: list[str] = []
        for c in charges:
            args += [str(slice_of(now, c.window_seconds)), _number(c.amount)]
        try:
            await self._refund(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None

    async def usage(self, key_prefix_or_rule: str, *, now: float) -> list[Usage]:
        client = self._require()
        pattern = _glob_escape(self.prefix + usage_prefix(key_prefix_or_rule)) + "*"
        counters: list[tuple[str, int]] = []
        try:
            async for full in client.scan_iter(match=pattern, count=500):
                try:
                    key = full[len(self.prefix) :]
                    counters.append((key, parse_charge_key(key)[2]))
                except ValueError:
                    continue  # not a counter of ours (or a fixed-window one from before)
            async with client.pipeline(transaction=False) as pipe:
                for key, _ in counters:
                    pipe.hgetall(self.prefix + key)
                replies = await pipe.execute(raise_on_error=False) if counters else []
        except (RedisError, OSError) as exc:
            raise BudgetUnavailable(f"budget store {_shown(self.url)} failed: {exc}") from None
        found: list[Usage] = []
        for (key, window), fields in zip(counters, replies, strict=True):
            if not isinstance(fields, dict):
                continue  # expired between SCAN and HGETALL, or not a hash: not ours
            oldest = oldest_live_slice(now, window)
            try:
                live = [float(amount) for index, amount in fields.items() if int(index) >= oldest]
            except ValueError:
                continue
            if live:
                found.append(Usage(key, sum(live), window))
        return sorted(found, key=lambda u: u.key)
