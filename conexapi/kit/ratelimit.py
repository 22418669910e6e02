"""Outbound rate limits shared by every worker (GCRA, one schedule per upstream account).

An upstream service allows each account (a Siigo company, say) so many requests per
window and answers 429 past that, counting in a sliding window. Each account's budget
comes from its connection. We space its requests evenly at a slightly lower rate, with no
burst, so that no window can ever hold more than the budget, whatever the number of
workers: the schedule ("theoretical arrival time") lives in Redis and each acquire
reserves the next slot atomically. Embedded mode keeps the same schedule in process.

The schedule runs on one clock, the Redis server's (``TIME`` inside the script): worker
clocks drift and a worker minutes ahead or behind would otherwise stall every other worker
or be stalled by them. Only durations ("wait this long") travel back to the workers.

A refusal all the same (another client of the same account, a budget set too high) pushes
the account's schedule back for every worker; a request already waiting for its slot
checks again when the slot comes and waits anew if the schedule was pushed past it.

A caller never waits long in a worker slot: when the next free slot is further away than
``max_wait`` the limiter reserves nothing and raises :class:`BudgetExhausted` with the
wait, and the run goes back to the database until then. One company's backlog (or a
``Retry-After`` of an hour) would otherwise fill every slot of every worker with runs
asleep on that company's budget while other merchants' orders wait.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

from redis.asyncio import Redis

from connectors.errors import BudgetExhausted
from connectors.models import RateBudget

#: Longest wait for a slot inside a worker slot; past it the run goes back to the database.
MAX_WAIT_SECONDS = 30.0

# KEYS[1]: the account's schedule, a hash {tat, blocked}: the next free slot and the end
# of the latest push-back, in Redis server seconds. ARGV[1]: seconds between requests;
# ARGV[2]: "1" when the caller has waited for a slot it holds (then it goes, unless a
# push-back since has moved the schedule past now); ARGV[3]: the longest wait worth a
# reservation. Returns the seconds to wait; negative (minus the wait) when that is longer
# than ARGV[3], and then nothing was reserved.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'tat', 'blocked')
local tat = tonumber(state[1] or '0')
local blocked = tonumber(state[2] or '0')
if ARGV[2] == '1' and blocked <= now then return '0' end
if tat < now then tat = now end
if tat - now > tonumber(ARGV[3]) then return string.format('%.6f', now - tat) end
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat + interval))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat + interval, blocked) - now) * 1000) + 1000)
return string.format('%.6f', tat - now)
"""

# KEYS[1] as above; ARGV[1]: seconds from now during which no request may go.
_PUSH_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'tat', 'blocked')
local tat = tonumber(state[1] or '0')
local blocked = tonumber(state[2] or '0')
if until_ <= blocked then return 0 end
redis.call('HSET', KEYS[1], 'blocked', string.format('%.6f', until_))
if tat < until_ then redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', until_)) end
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, until_) - now) * 1000) + 1000)
return 1
"""


def interval_for(requests: int, window_seconds: float, headroom: float = 0.95) -> float:
    """Seconds between requests so a window never holds more than ``requests``."""
    return window_seconds / max(requests * headroom - 1, 1)


class _Schedule(ABC):
    """``acquire`` over a reservation primitive: reserve a slot, wait for it, and check
    once the slot comes that no push-back moved the schedule past it meanwhile."""

    def __init__(self, max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.max_wait = max_wait

    @abstractmethod
    async def _reserve(self, key: str, interval: float, *, waited: bool) -> float:
        """Seconds until a slot reserved now for ``key``; with ``waited``, 0 when the slot
        held may be used, else the wait for a new one. Minus the wait, reserving nothing,
        when it is longer than ``max_wait``."""

    async def acquire(self, key: str, budget: RateBudget) -> None:
        interval = interval_for(budget.requests, budget.window_seconds)
        wait = await self._reserve(key, interval, waited=False)
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await self._reserve(key, interval, waited=True)
        if wait < 0:
            raise BudgetExhausted(
                f"the account's request budget has no slot for {-wait:.0f} s",
                retry_after=-wait,
            )


class RedisRateLimiter(_Schedule):
    def __init__(
        self, redis: Redis, prefix: str = "rl:", max_wait: float = MAX_WAIT_SECONDS
    ) -> None:
        super().__init__(max_wait)
        self.redis = redis
        self.prefix = prefix
        self._reserve_script = redis.register_script(_RESERVE)
        self._push_back_script = redis.register_script(_PUSH_BACK)

    async def _reserve(self, key: str, interval: float, *, waited: bool) -> float:
        answer = await self._reserve_script(
            keys=[self.prefix + key],
            args=[repr(interval), "1" if waited else "0", repr(self.max_wait)],
        )
        return float(answer)

    async def push_back(self, key: str, seconds: float) -> None:
        if seconds > 0:
            await self._push_back_script(keys=[self.prefix + key], args=[repr(float(seconds))])


class LocalRateLimiter(_Schedule):
    """The same schedule for one process (the embedded mode has one worker)."""

    def __init__(self, max_wait: float = MAX_WAIT_SECONDS) -> None:
        super().__init__(max_wait)
        self._tat: dict[str, float] = {}
        self._blocked: dict[str, float] = {}

    async def _reserve(self, key: str, interval: float, *, waited: bool) -> float:
        now = time.monotonic()
        if waited and self._blocked.get(key, 0.0) <= now:
            return 0.0
        tat = max(self._tat.get(key, 0.0), now)
        if tat - now > self.max_wait:
            return now - tat
        self._tat[key] = tat + interval
        return tat - now

    async def push_back(self, key: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._blocked.get(key, 0.0):
            self._blocked[key] = until
            self._tat[key] = max(self._tat.get(key, 0.0), until)
