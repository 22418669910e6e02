"""Process resources: one engine, one Redis client, one HTTP client and what is built on
them (connectors, login limits, the sync context), made on the running loop (FastAPI
lifespan, Celery ``worker_process_init``) by :func:`open_resources` and closed with it.
Never at import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker
from conexapi.kit.context import note_upstream_id
from conexapi.settings import Settings

if TYPE_CHECKING:  # the domains import this module; it names their types only
    from conexapi.auth.ratelimit import AuthRateLimiter
    from conexapi.connections.tokens import TokenService
    from conexapi.integrations import Integrations
    from conexapi.sync.context import SyncContext


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis | None
    http: httpx.AsyncClient
    #: This process's connector instances, on the HTTP client above.
    integrations: Integrations
    #: Login and credential limits (shared through Redis when there is one).
    auth_limiter: AuthRateLimiter
    #: One per marketplace connector, made when a job first needs it (see
    #: ``connections.tokens.get_token_service``): single-flight refreshes work only if
    #: every job of the process shares it.
    token_services: dict[str, TokenService] = field(default_factory=dict)
    #: What sync runs share: connectors and the credential caches.
    sync: SyncContext = field(init=False)

    def __post_init__(self) -> None:
        from conexapi.sync.context import SyncContext

        self.sync = SyncContext(res=self, integrations=self.integrations)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def _note_request_id(response: httpx.Response) -> None:
    """Keep the upstream request id of every call made during a run (for its record)."""
    request_id = response.headers.get("x-request-id")
    if request_id:
        note_upstream_id(f"{response.request.url.host}:{request_id}"[:120])


async def open_resources(
    settings: Settings, *, mounts: dict[str, httpx.AsyncBaseTransport] | None = None
) -> Resources:
    """``mounts``: transports by URL prefix for the HTTP client (tests serve the upstream
    sandboxes in process this way); the client is built once, with them."""
    # Imported here: these domain modules import this one for the Resources type.
    from conexapi.auth.ratelimit import AuthRateLimiter
    from conexapi.integrations import build_integrations, rate_limiter

    engine = create_engine(settings)
    redis = (
        Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        if settings.redis_url
        else None
    )
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        event_hooks={"response": [_note_request_id]},
        mounts=mounts,
    )
    return Resources(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        redis=redis,
        http=http,
        integrations=build_integrations(http, settings, rate_limiter(redis)),
        auth_limiter=AuthRateLimiter.from_settings(settings),
    )
