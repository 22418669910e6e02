from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from conexapi.kit.locks import Leases, LeaseTimeout, LocalLeases, RedisLeases, SingleFlight
from conexapi.kit.locks import _LocalTable as LocalTable


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[Leases]:
    if request.param == "local":
        yield LocalLeases(LocalTable())
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisLeases(client, prefix=f"test:{secrets.token_hex(4)}:")
    finally:
        await client.aclose()


async def test_one_holder_at_a_time(leases: Leases) -> None:
    inside = 0
    most = 0

    async def job() -> None:
        nonlocal inside, most
        async with leases.hold("k", ttl=10, wait=10):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(job() for _ in range(8)))
    assert most == 1


async def test_waiting_too_long_raises(leases: Leases) -> None:
    async with leases.hold("busy", ttl=10, wait=1):
        with pytest.raises(LeaseTimeout):
            async with leases.hold("busy", ttl=10, wait=0.1):
                pass
    async with leases.hold("busy", ttl=10, wait=0.1):  # released: free again
        pass


async def test_an_expired_holder_does_not_release_the_next_holders_lease(leases: Leases) -> None:
    first_inside = asyncio.Event()
    second_inside = asyncio.Event()
    first_may_leave = asyncio.Event()
    first_left = asyncio.Event()

    async def first() -> None:
        async with leases.hold("k", ttl=0.2, wait=1):
            first_inside.set()
            await first_may_leave.wait()  # outlives its TTL
        first_left.set()

    async def second() -> None:
        await first_inside.wait()
        async with leases.hold("k", ttl=30, wait=10):  # gets it once the first expires
            second_inside.set()
            first_may_leave.set()
            await first_left.wait()  # the first has left (and "released")
            with pytest.raises(LeaseTimeout):
                async with leases.hold("k", ttl=1, wait=0.1):
                    pass

    await asyncio.gather(first(), second())
    assert second_inside.is_set()


@pytest.mark.redis
async def test_redis_release_is_compare_and_delete(redis_client: Redis) -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    leases = RedisLeases(redis_client, prefix=prefix)
    async with leases.hold("k", ttl=5, wait=1):
        mine = await redis_client.get(prefix + "k")
        assert mine
        await redis_client.set(prefix + "k", b"someone-else")  # as if ours expired and was retaken
    assert await redis_client.get(prefix + "k") == b"someone-else"
    await redis_client.delete(prefix + "k")


async def test_single_flight_shares_one_call() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [42] * 10
    assert calls == 1
    assert flight.in_flight() == 0
    assert await flight.run("k", work) == 42  # a later call runs again
    assert calls == 2


async def test_single_flight_errors_reach_every_waiter_and_cancel_is_local() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def fails() -> int:
        await release.wait()
        raise RuntimeError("boom")

    a = asyncio.create_task(flight.run("k", fails))
    b = asyncio.create_task(flight.run("k", fails))
    c = asyncio.create_task(flight.run("k", fails))
    await asyncio.sleep(0)
    c.cancel()  # one waiter gives up; the call goes on for the others
    await asyncio.sleep(0)
    release.set()
    for task in (a, b):
        with pytest.raises(RuntimeError):
            await task
    assert c.cancelled()
