"""Rate limits for the doors that take credentials (login, token refresh, bad keys).

Counted in Redis when ``CONEXAPI_REDIS_URL`` is set, so every API process shares them;
in process memory otherwise (the embedded mode has one process). Built on first use on
the running loop and kept on the app's resources.
"""

from __future__ import annotations

import math
import time

import structlog
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException

from conexapi.kit.resources import Resources

log = structlog.get_logger(__name__)

_KEY = "auth.ratelimiter"


class AuthRateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def for_resources(cls, resources: Resources) -> AuthRateLimiter:
        limiter = resources.extras.get(_KEY)
        if isinstance(limiter, AuthRateLimiter):
            return limiter
        url = resources.settings.redis_url
        storage: Storage = (
            RedisStorage(
                f"async+{url}",
                implementation="redispy",
                key_prefix="conexapi:rl",
                wrap_exceptions=True,
            )
            if url
            else MemoryStorage()
        )
        limiter = cls(storage)
        resources.extras[_KEY] = limiter
        return limiter

    async def hit(self, limit: str, *identifiers: str) -> None:
        """Count one attempt; refuse with 429 (and Retry-After) past the limit."""
        item = parse(limit)
        try:
            allowed = await self.limiter.hit(item, *identifiers)
            if allowed:
                return
            stats = await self.limiter.get_window_stats(item, *identifiers)
        except Exception as exc:  # the store is down: limits are a guard, not a gate
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return
        raise _too_many(item, stats.reset_time)

    async def exceeded(self, limit: str, *identifiers: str) -> None:
        """Refuse with 429 if the limit is already used up, without counting."""
        item = parse(limit)
        try:
            if await self.limiter.test(item, *identifiers):
                return
            stats = await self.limiter.get_window_stats(item, *identifiers)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return
        raise _too_many(item, stats.reset_time)


def _too_many(item: RateLimitItem, reset_time: float) -> HTTPException:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    exc = HTTPException(
        429, detail="Too many attempts; try again later.", headers={"Retry-After": str(retry_after)}
    )
    exc.details = {"limit": str(item), "retry_after_seconds": retry_after}  # type: ignore[attr-defined]
    return exc


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
