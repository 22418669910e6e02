"""Outbound rate limits shared by every worker (GCRA, one Redis key per account).

Siigo allows 100 requests per minute per company and answers 429 past that, counting in
a sliding window. We space requests evenly at a slightly lower rate, with no burst, so
that no 60-second window can ever hold more than the limit, whatever the number of
workers: the schedule ("theoretical arrival time") lives in Redis and each acquire
reserves the next slot atomically. Embedded mode keeps the same schedule in process.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

# Reserve the next slot: TAT = max(TAT, now) + interval; the caller waits until its slot.
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ttl = math.ceil((tat + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl)
return tostring(tat - now)
"""


def interval_for(requests: int, window_seconds: float, headroom: float = 0.95) -> float:
    """Seconds between requests so a window never holds more than ``requests``."""
    return window_seconds / max(requests * headroom - 1, 1)


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, requests: int, window_seconds: float = 60.0, prefix: str = "rl:"
    ) -> None:
        self.redis = redis
        self.interval = interval_for(requests, window_seconds)
        self.prefix = prefix
        self._script = redis.register_script(_RESERVE)

    async def acquire(self, key: str) -> None:
        wait = float(
            await self._script(keys=[self.prefix + key], args=[time.time(), self.interval])
        )
        if wait > 0:
            await asyncio.sleep(wait)


class LocalRateLimiter:
    """The same schedule for one process (the embedded mode has one worker)."""

    def __init__(self, requests: int, window_seconds: float = 60.0) -> None:
        self.interval = interval_for(requests, window_seconds)
        self._tat: dict[str, float] = {}

    async def acquire(self, key: str) -> None:
        now = time.monotonic()
        tat = max(self._tat.get(key, 0.0), now)
        self._tat[key] = tat + self.interval
        if tat > now:
            await asyncio.sleep(tat - now)
