"""What each worker process runs in the clock-skew test (importable under spawn)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from conexapi.kit.ratelimit import RedisRateLimiter
from connectors.models import RateBudget


def acquire_with_skewed_clock(
    redis_url: str,
    key: str,
    budget: dict[str, Any],
    count: int,
    skew_seconds: float,
    barrier: Any,
    results: Any,
) -> None:
    """``count`` acquires in a process whose wall clock is ``skew_seconds`` off; puts the
    Redis server's time at each grant (one clock for every process) on ``results``."""
    real = time.time
    # The clock a limiter would read in this process (time.monotonic, which asyncio's
    # sleeps use, is not the wall clock and is left alone).
    time.time = lambda: real() + skew_seconds  # type: ignore[assignment]
    results.put(asyncio.run(_acquire(redis_url, key, RateBudget(**budget), count, barrier)))


async def _acquire(
    redis_url: str, key: str, budget: RateBudget, count: int, barrier: Any
) -> list[float]:
    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis)
        await asyncio.to_thread(barrier.wait, 120)
        granted = []
        for _ in range(count):
            await limiter.acquire(key, budget)
            seconds, micros = await redis.time()
            granted.append(seconds + micros / 1_000_000)
        return granted
    finally:
        await redis.aclose()
