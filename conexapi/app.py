"""The FastAPI application: thin HTTP over the domain services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from conexapi import __version__
from conexapi.health.endpoints import router as health_router
from conexapi.kit import jobs
from conexapi.kit.docs import install_docs
from conexapi.kit.errors import install_error_handlers
from conexapi.kit.logging import configure_logging
from conexapi.kit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from conexapi.kit.proxies import behind_proxies
from conexapi.kit.resources import open_resources
from conexapi.kit.security import SecurityHeadersMiddleware, json_answer_headers
from conexapi.settings import Settings, get_settings


class ConexAPI(FastAPI):
    """FastAPI with the webhook fast path in front of its stack (see ``webhooks.endpoints``)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await super().__call__(scope, receive, send)
        else:
            await self.front(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, send_jobs: bool = True, embedded_worker: bool = False
) -> FastAPI:
    """The API. ``embedded_worker``: also run a Celery worker and beat in threads of this
    process, consuming the jobs it sends (only with the in-memory broker, i.e. no Redis)."""
    settings = settings or get_settings()
    if embedded_worker and (settings.redis_url or not send_jobs):
        raise ValueError("the embedded worker runs only without Redis, on the jobs sent here")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await open_resources(settings)
        app.state.resources = resources
        app.state.embedded_worker = None
        if send_jobs:
            from workers.celery_app import create_celery
            from workers.sender import sender_for

            celery = app.state.celery if hasattr(app.state, "celery") else create_celery(settings)
            jobs.set_sender(sender_for(celery, resources.redis))
        from conexapi.webhooks.inbox import InboxWriter

        app.state.inbox = InboxWriter(resources.engine)
        app.state.inbox.start()
        try:
            if embedded_worker:
                from workers.embedded import start_embedded_worker

                # Started once the sender is installed, so that the jobs its tasks queue
                # go through the same in-memory broker; /readyz reports on it.
                app.state.embedded_worker = await asyncio.to_thread(
                    start_embedded_worker, celery, settings=settings, beat=True
                )
            yield
        finally:
            await app.state.inbox.stop()
            if app.state.embedded_worker is not None:
                # Warm: a job in progress finishes; what is left waits in the database.
                await asyncio.to_thread(app.state.embedded_worker.stop)
            if send_jobs:
                jobs.set_sender(None)
            await resources.aclose()

    app = ConexAPI(
        title="ConexAPI",
        version=__version__,
        summary="Marketplace sales become ERP invoices: exactly one per order.",
        lifespan=lifespan,
        # Served by install_docs instead, each page with the policy it needs (kit/docs.py).
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    install_docs(app)
    for router in _domain_routers():
        app.include_router(router)
    from conexapi.kit.api.openapi import document_errors

    document_errors(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    # Outermost: it completes the envelopes the middlewares above answer themselves too.
    https = settings.public_url.startswith("https://")
    app.add_middleware(SecurityHeadersMiddleware, https=https)
    from conexapi.webhooks.endpoints import WebhookFastPath

    front = WebhookFastPath(
        partial(FastAPI.__call__, app),
        app.state,
        settings.max_body_bytes,
        json_answer_headers(https),
    )
    # Outermost, so every part of the app sees the same client address.
    app.front = behind_proxies(front, settings.trusted_proxies)
    return app


def _domain_routers() -> list[APIRouter]:
    """Routers of the domain packages; each one adds itself here."""
    from conexapi.audit.endpoints import router as audit_router
    from conexapi.auth.endpoints import router as auth_router
    from conexapi.connections.endpoints import router as consent_router
    from conexapi.connections.ops_endpoints import router as connections_router
    from conexapi.merchants.endpoints import router as merchants_router
    from conexapi.pipelines.endpoints import router as pipelines_router
    from conexapi.reconcile.endpoints import router as reconcile_router
    from conexapi.sync.endpoints import router as orders_router
    from conexapi.webhooks.endpoints import router as webhooks_router
    from conexapi.webhooks.ops_endpoints import router as events_router

    # In this order, the OpenAPI document lists its paths as it always has.
    return [
        webhooks_router,
        consent_router,
        auth_router,
        merchants_router,
        connections_router,
        pipelines_router,
        orders_router,
        events_router,
        audit_router,
        reconcile_router,
    ]


def create_app_from_env() -> FastAPI:
    """``conexapi api``. Without Redis the jobs go to an in-memory broker that only this
    process can read, so it runs their worker (and beat) itself; with Redis, the API only."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)
    return create_app(settings, embedded_worker=settings.redis_url is None)
