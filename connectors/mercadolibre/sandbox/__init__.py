"""A local, faithful Mercado Libre: OAuth with single-use refresh tokens, orders, billing
info, search paging, notifications judged like ML, plus the admin API of SANDBOX.md.

Run it alone with ``uvicorn --factory connectors.mercadolibre.sandbox:create_app``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.mercadolibre.sandbox import admin_routes, oauth_routes, orders_routes
from connectors.mercadolibre.sandbox.core import MLSandbox
from connectors.mercadolibre.sandbox.state import MLSandboxConfig, error_body
from connectors.sandbox_kit import ADMIN_PREFIX


class _RequestId:
    """Every answer carries ``x-request-id``, fault answers from the knobs included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", uuid.uuid4().hex.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, _send)


def create_app(notify_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The sandbox app. ``notify_transport`` lets tests deliver notifications in-process."""
    sb = MLSandbox(notify_transport)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sb.notifier.aclose()

    app = FastAPI(
        title="Mercado Libre sandbox",
        lifespan=lifespan,
        docs_url=f"{ADMIN_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
        swagger_ui_oauth2_redirect_url=f"{ADMIN_PREFIX}/docs/oauth2-redirect",
    )
    app.state.sandbox = sb

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.url.path.startswith(ADMIN_PREFIX):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        code = "not_found" if exc.status_code == 404 else "bad_request"
        message = "resource not found" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(error_body(exc.status_code, code, message), status_code=exc.status_code)

    app.include_router(oauth_routes.build_router(sb))
    app.include_router(orders_routes.build_router(sb))
    app.include_router(admin_routes.build_router(sb))
    sb.kit.install(app)
    app.add_middleware(_RequestId)
    return app


def sandbox_of(app: FastAPI) -> MLSandbox:
    """The sandbox behind an app made by :func:`create_app` (tests reach its state)."""
    sb = app.state.sandbox
    assert isinstance(sb, MLSandbox)
    return sb


__all__ = ["MLSandbox", "MLSandboxConfig", "create_app", "sandbox_of"]
