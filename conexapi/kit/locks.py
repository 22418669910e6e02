"""Leases (short-lived, expiring locks) shared by every process, and in-process single-flight.

A lease is held under a random owner token and expires by itself, so a process that dies
while holding one blocks the others for at most ``ttl``. Releasing deletes the key only if
it still holds our token (compare-and-delete in one Lua script): a holder whose lease ran
out must not delete the lease a second holder took since.

Production uses Redis (:class:`RedisLeases`). The embedded mode has no Redis and runs in
one process, where :class:`LocalLeases` gives the same semantics with a process-wide table.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis

T = TypeVar("T")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_POLL_FIRST = 0.02
_POLL_MAX = 0.25


class LeaseTimeout(Exception):
    """The lease stayed taken for longer than the caller was willing to wait."""


class Leases(Protocol):
    def hold(self, key: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold the lease on ``key`` for the block; wait up to ``wait`` s to get it."""
        ...


async def _poll(try_once: Callable[[], Awaitable[bool]], wait: float, key: str) -> None:
    deadline = time.monotonic() + wait
    delay = _POLL_FIRST
    while not await try_once():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LeaseTimeout(f"lease {key!r} still taken after {wait:.1f}s")
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)


class RedisLeases:
    def __init__(self, redis: Redis, prefix: str = "conexapi:lease:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._release: Any = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, key: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        name = self.prefix + key
        token = secrets.token_hex(16)

        async def try_once() -> bool:
            return bool(await self.redis.set(name, token, nx=True, px=int(ttl * 1000)))

        await _poll(try_once, wait, name)
        try:
            yield
        finally:
            # Shielded: a cancelled holder still gives the lease back instead of making
            # everybody wait for the TTL.
            await asyncio.shield(self._release(keys=[name], args=[token]))


class _LocalTable:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}

    def take(self, key: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._guard:
            current = self._held.get(key)
            if current is not None and current[1] > now:
                return False
            self._held[key] = (token, now + ttl)
            return True

    def release(self, key: str, token: str) -> None:
        with self._guard:
            current = self._held.get(key)
            if current is not None and current[0] == token:
                del self._held[key]


#: One table per process, shared by every event loop and thread in it.
_LOCAL = _LocalTable()


class LocalLeases:
    """Leases for the embedded mode: one process, possibly several threads and loops."""

    def __init__(self, table: _LocalTable | None = None) -> None:
        self._table = table or _LOCAL

    @asynccontextmanager
    async def hold(self, key: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        token = secrets.token_hex(16)

        async def try_once() -> bool:
            return self._table.take(key, token, ttl)

        await _poll(try_once, wait, key)
        try:
            yield
        finally:
            self._table.release(key, token)


def leases_for(redis: Redis | None, prefix: str = "conexapi:lease:") -> Leases:
    return RedisLeases(redis, prefix) if redis is not None else LocalLeases()


class SingleFlight(Generic[T]):
    """Concurrent callers with the same key on one event loop share one call.

    The call runs as its own task: a caller that is cancelled stops waiting without
    cancelling the call the others are waiting on.
    """

    def __init__(self) -> None:
        self._calls: dict[tuple[int, Hashable], asyncio.Task[T]] = {}

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        task = self._calls.get(slot)
        # A loop's id can be reused once it is closed: never join a task of another loop.
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(_call(fn))
            self._calls[slot] = task
            task.add_done_callback(lambda t: self._done(slot, t))
        return await asyncio.shield(task)

    def _done(self, slot: tuple[int, Hashable], task: asyncio.Task[T]) -> None:
        if self._calls.get(slot) is task:
            del self._calls[slot]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception never retrieved" when nobody waits

    def in_flight(self) -> int:
        return len(self._calls)


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


__all__ = ["LeaseTimeout", "Leases", "LocalLeases", "RedisLeases", "SingleFlight", "leases_for"]
