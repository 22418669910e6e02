"""Siigo's per-company limit against the sandbox's own sliding window, with the product's
Redis schedule shared by two workers (two connectors, each with its own Redis client)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from conexapi.kit.ratelimit import RedisRateLimiter
from connectors.base import NoLimit
from connectors.errors import RateLimited
from tests.connectors.siigo.fixtures import SiigoSandbox

pytestmark = pytest.mark.redis

#: A test company's 10 requests, over a 2-second window so the test takes seconds.
WINDOW = 2.0


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        yield RedisRateLimiter(a), RedisRateLimiter(b)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_429_holds_every_worker_until_the_company_s_window_is_clear(
    siigo_sandbox: SiigoSandbox, workers: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    await siigo_sandbox.configure(
        rate_limit={"enabled": True, "window_seconds": WINDOW, "production": 100, "test": 10}
    )
    account = await siigo_sandbox.account(mode="test")
    await siigo_sandbox.product(account, "SKU-1")
    # Another integration of the same company (unknown to the product) spends the window.
    other = siigo_sandbox.connector(limiter=NoLimit())
    for _ in range(10):
        assert await other.find_product(account.credentials, "SKU-1") is not None
    worker_a = siigo_sandbox.connector(limiter=workers[0], rate_window_seconds=WINDOW)
    worker_b = siigo_sandbox.connector(limiter=workers[1], rate_window_seconds=WINDOW)
    credentials = account.credentials.model_copy(update={"budget": worker_a.rate_budget("test")})

    with pytest.raises(RateLimited):
        await worker_a.find_product(credentials, "SKU-1")
    # Worker B goes only once the company's window has emptied: Siigo accepts its call.
    assert await worker_b.find_product(credentials, "SKU-1") is not None

    log = await siigo_sandbox.requests(path="/v1/products")
    assert len(log) == 12
    assert [entry["status"] for entry in log] == [200] * 10 + [429, 200]
