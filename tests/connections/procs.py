"""What each worker process runs in the two-process token test (importable under spawn)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
from redis.asyncio import Redis

from conexapi.connections.tokens import TokenService
from conexapi.db import create_engine, create_sessionmaker
from conexapi.settings import Settings
from connectors.base import NoLimit
from connectors.mercadolibre import factory as ml_factory


def run_jobs(
    settings_values: dict[str, Any],
    connection_id: int,
    key_prefix: str,
    jobs: int,
    barrier: Any,
    results: Any,
) -> None:
    results.put(asyncio.run(_run(settings_values, connection_id, key_prefix, jobs, barrier)))


async def _run(
    settings_values: dict[str, Any], connection_id: int, key_prefix: str, jobs: int, barrier: Any
) -> list[dict[str, Any]]:
    settings = Settings(_env_file=None, **settings_values)
    engine = create_engine(settings)
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            connector = ml_factory(http, settings, NoLimit())
            # One per process, shared by its jobs, as the worker runtime does.
            tokens = TokenService(
                create_sessionmaker(engine), redis, connector, settings, key_prefix=key_prefix
            )

            async def job() -> dict[str, Any]:
                try:
                    token = await tokens.access_token(connection_id)
                    profile = await connector.get_profile(token)  # the token works
                except Exception as exc:
                    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                return {
                    "ok": True,
                    "token": hashlib.sha256(token.encode()).hexdigest(),
                    "account": profile.account_id,
                }

            # Both processes start their jobs together, when the token has just expired.
            await asyncio.to_thread(barrier.wait, 120)
            return list(await asyncio.gather(*(job() for _ in range(jobs))))
    finally:
        await redis.aclose()
        await engine.dispose()
