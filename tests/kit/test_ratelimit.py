"""The shared outbound schedule: one per account, on the Redis server's clock, pushed back
for every worker by a refusal."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from conexapi.kit.ratelimit import LocalRateLimiter, RedisRateLimiter
from connectors.errors import BudgetExhausted
from connectors.models import RateBudget
from tests.kit.limiter_procs import acquire_with_skewed_clock

#: 6 requests per 3 s: slots 0.64 s apart, so 7 grants span 3.8 s and the check below
#: (no 7 within 3 s) leaves 0.8 s for a loaded machine's scheduling delays.
BUDGET = RateBudget(requests=6, window_seconds=3.0)
PER_PROCESS = 6


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def server_now(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds + micros / 1_000_000)


async def schedule(redis: Redis, key: str, field: str) -> float:
    return float(await redis.hget(f"rl:{key}", field) or 0)


async def until(
    read: Callable[[], Awaitable[float]], holds: Callable[[float], bool], seconds: float = 30
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not holds(await read()):
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def most_in_any_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max(sum(1 for t in ordered[i:] if t < start + window) for i, start in enumerate(ordered))


@pytest.mark.redis
@pytest.mark.slow
async def test_workers_minutes_apart_in_clock_share_one_schedule(redis_url: str) -> None:
    """One worker process 2 minutes ahead, one 10 minutes behind: neither stalls the other
    (before, the one behind waited 12 minutes per call) and together they stay within the
    budget."""
    key = f"skew:{secrets.token_hex(4)}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=acquire_with_skewed_clock,
            args=(redis_url, key, BUDGET.model_dump(), PER_PROCESS, skew, barrier, results),
        )
        for skew in (120.0, -600.0)
    ]
    for worker in workers:
        worker.start()
    try:
        granted: list[float] = []
        for _ in workers:
            try:
                # 12 slots take about 8 s; the deadline is for a loaded machine, far below
                # the stall each skew caused.
                granted += await asyncio.to_thread(results.get, True, 90)
            except queue.Empty:
                pytest.fail("a worker was still waiting for its slots after 90 s")
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.join, 10)
            if worker.is_alive():
                worker.kill()
    assert len(granted) == 2 * PER_PROCESS
    assert most_in_any_window(granted, BUDGET.window_seconds) <= BUDGET.requests


@pytest.mark.redis
async def test_a_push_back_holds_every_worker_even_one_already_waiting(
    redis: Redis, redis_url: str
) -> None:
    key = f"push:{secrets.token_hex(4)}"
    other = Redis.from_url(redis_url)  # worker B's own connection
    worker_a, worker_b = RedisRateLimiter(redis), RedisRateLimiter(other)
    slow = RateBudget(requests=3, window_seconds=2.0)  # a slot every second
    try:
        await worker_a.acquire(key, slow)
        first_free = await schedule(redis, key, "tat")
        # B reserves the next slot, a second from now, and waits for it...
        waiting = asyncio.create_task(worker_b.acquire(key, slow))
        await until(lambda: schedule(redis, key, "tat"), lambda tat: tat > first_free)
        assert not waiting.done()
        # ...when A is refused and pushes the schedule 3 s back.
        await worker_a.push_back(key, 3.0)
        blocked_until = await schedule(redis, key, "blocked")
        assert blocked_until > await server_now(redis)
        await asyncio.wait_for(waiting, 60)
        assert await server_now(redis) >= blocked_until
        # And a worker coming later gets a slot after the push-back too.
        await worker_a.acquire(key, slow)
        assert await server_now(redis) >= blocked_until
    finally:
        await other.aclose()


@pytest.mark.redis
async def test_each_account_keeps_its_own_schedule(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    slow = RateBudget(requests=2, window_seconds=600.0)
    await limiter.acquire("company-a", slow)
    await limiter.push_back("company-a", 600.0)
    # Another company is not held by the first one's budget or refusal.
    await asyncio.wait_for(limiter.acquire("company-b", slow), 30)


async def test_the_embedded_limiter_pushes_back_a_request_already_waiting() -> None:
    limiter = LocalRateLimiter()
    slow = RateBudget(requests=3, window_seconds=2.0)
    loop = asyncio.get_running_loop()
    await limiter.acquire("k", slow)
    waiting = asyncio.create_task(limiter.acquire("k", slow))
    await asyncio.sleep(0)
    await limiter.push_back("k", 2.5)
    pushed_until = loop.time() + 2.5
    await asyncio.wait_for(waiting, 60)
    assert loop.time() >= pushed_until - 0.05


def _limiters(redis: Redis | None) -> list[LocalRateLimiter | RedisRateLimiter]:
    made: list[LocalRateLimiter | RedisRateLimiter] = [LocalRateLimiter(max_wait=5.0)]
    if redis is not None:
        made.append(RedisRateLimiter(redis, prefix=f"t{secrets.token_hex(3)}:", max_wait=5.0))
    return made


async def test_a_slot_further_than_max_wait_is_refused_and_the_schedule_not_moved(
    redis: Redis,
) -> None:
    # Two requests a minute: the second slot is about a minute away, far past max_wait.
    budget = RateBudget(requests=2, window_seconds=60.0)
    for limiter in _limiters(redis):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await limiter.acquire("company", budget)
        with pytest.raises(BudgetExhausted) as first:
            await limiter.acquire("company", budget)
        with pytest.raises(BudgetExhausted) as second:
            await limiter.acquire("company", budget)
        # Refused at once, never slept on, and the wait is the whole interval both times:
        # a refusal reserves nothing, so runs that bounce never push the schedule later.
        assert loop.time() - started < 5.0
        assert first.value.code == "rate_budget"
        assert first.value.retry_after is not None and second.value.retry_after is not None
        assert 40.0 < first.value.retry_after <= 70.0
        assert abs(second.value.retry_after - first.value.retry_after) < 1.0
        # Another account is untouched.
        await limiter.acquire("other", budget)


async def test_a_long_push_back_sends_the_caller_back_instead_of_sleeping(redis: Redis) -> None:
    budget = RateBudget(requests=100, window_seconds=60.0)
    for limiter in _limiters(redis):
        await limiter.push_back("company", 3600.0)  # a Retry-After of an hour
        with pytest.raises(BudgetExhausted) as refused:
            await asyncio.wait_for(limiter.acquire("company", budget), 10)
        assert refused.value.retry_after is not None and refused.value.retry_after > 3500
