"""A faithful Siigo Nube sandbox: an ASGI app speaking ``api.siigo.com``'s routes, with the
kit's admin routes and fault knobs. ``create_app()`` builds a fresh, empty one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.sandbox_kit import Sandbox, SandboxConfig
from connectors.siigo.sandbox.admin import admin_router
from connectors.siigo.sandbox.api import DEFAULT_TOKEN_LIFETIME, api_router, bearer
from connectors.siigo.sandbox.state import SiigoApiError, SiigoState, error_body, siigo_json

#: Siigo's own code for the kit's generic failures (fail_next, error_rate, outage).
_KIT_CODES = {
    "too_many_requests": "requests_limit",
    "internal_error": "unhandled_error",
    "bad_gateway": "service_unavailable",
    "gateway_timeout": "request_timeout",
    "bad_request": "invalid_type",
}
#: Requests per minute by company mode ("Límite de solicitudes", ``requests_limit``).
DEFAULT_LIMITS = {"production": 100, "test": 10}


def default_config() -> SandboxConfig:
    return SandboxConfig(
        rate_limit={"enabled": True, "window_seconds": 60.0, **DEFAULT_LIMITS},
        token_lifetime_seconds=DEFAULT_TOKEN_LIFETIME,
        invoice_processing_ms=0,
    )


def _kit_error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return error_body(status, _KIT_CODES.get(code, code), message)


class RateLimit:
    """Siigo's per-company limit as a sliding window over the last ``window_seconds``:
    100 requests (10 for a test company), then ``429 requests_limit`` with no Retry-After
    (none observed). Only ``/v1`` routes with a valid token count; ⚠ whether ``/auth``
    counts is not documented, here it does not."""

    def __init__(self, state: SiigoState, sandbox: Sandbox) -> None:
        self.state = state
        self.sandbox = sandbox
        self.clock: Callable[[], float] = time.monotonic

    def __call__(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]] | None:
        settings = self.sandbox.config.rate_limit
        if not settings.get("enabled", True) or not scope["path"].startswith("/v1/"):
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        company = self.state.company_for_token(bearer(headers.get("authorization")))
        if company is None:
            return None
        window = float(settings.get("window_seconds", 60.0))
        limit = int(settings.get(company.mode, DEFAULT_LIMITS.get(company.mode, 100)))
        now = self.clock()
        hits = company.hits
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return 429, error_body(
                429,
                "requests_limit",
                f"Too many requests: {limit} requests per minute for this company "
                "(10 for the test company, 100 in production)",
            )
        hits.append(now)
        return None


class RequestIdMiddleware:
    """An ``x-request-id`` on every answer: the caller's when it sent one, else a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v for k, v in scope["headers"] if k.lower() == b"x-request-id" and len(v) <= 128),
            None,
        )
        request_id = incoming or uuid.uuid4().hex.encode()

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, _send)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    state = SiigoState()
    sandbox = Sandbox(
        "siigo",
        error_body=_kit_error_body,
        config=config or default_config(),
        reset_hook=state.reset,
    )
    rate_limit = RateLimit(state, sandbox)
    sandbox.rate_limiter = rate_limit
    app = FastAPI(
        title="Siigo Nube sandbox",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.siigo = state
    app.state.sandbox = sandbox
    app.state.rate_limit = rate_limit
    app.include_router(api_router(state, sandbox))
    app.include_router(admin_router(state))

    @app.exception_handler(SiigoApiError)
    async def _siigo_error(request: Request, exc: SiigoApiError) -> Response:
        return siigo_json(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "invalid_type"
        return siigo_json(error_body(exc.status_code, code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return siigo_json(error_body(400, "invalid_type", "The request is not valid"), 400)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        return siigo_json(error_body(500, "unhandled_error", "Unhandled error"), 500)

    sandbox.install(app)
    # Added last, so it is the outermost layer and also stamps the kit's own answers.
    app.add_middleware(RequestIdMiddleware)
    return app


__all__ = ["RateLimit", "SiigoState", "create_app", "default_config"]
