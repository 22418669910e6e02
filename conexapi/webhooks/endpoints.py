"""``POST /webhooks/{connector}``: verify, commit to the inbox, answer 200, enqueue.

No upstream call happens here. A notification we do not act on (another topic, a seller
nobody linked) still gets its 200 and is recorded as ignored: anything else makes Mercado
Libre retry for an hour and, in time, disable the topic.

This is the busiest endpoint by far, so it is served twice over: :class:`WebhookFastPath`
answers it as plain ASGI in front of the FastAPI stack (the routing, dependency solving
and middleware layers cost as much CPU as the work itself), and the FastAPI route below
documents it in the OpenAPI schema and answers what the fast path passes on (an unknown
connector name). Both run ``service.accept_notification``, and both answer in the same
envelope with the same ``X-Request-ID``. The fast path's twin test is
``tests/webhooks/test_webhook_endpoint.py``: every test there runs against both, with the
FastAPI route as the reference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conexapi.kit.context import (
    clean_request_id,
    reset_request_id,
    set_request_id,
)
from conexapi.kit.errors import AppError, NotFound, envelope
from conexapi.kit.middleware import LATENCY, REQUESTS, send_json
from conexapi.kit.resources import Resources
from conexapi.webhooks import service
from conexapi.webhooks.schemas import WebhookAck
from connectors.base import InboundRequest, MarketplaceConnector

log = structlog.get_logger(__name__)

router = APIRouter(tags=["webhooks"])
ROUTE = "/webhooks/{connector}"
PREFIX = "/webhooks/"


@router.post(
    ROUTE,
    response_model=WebhookAck,
    summary="Receive a marketplace notification",
    responses={
        400: {"description": "Malformed or unverifiable"},
        413: {"description": "Too large"},
    },
)
async def receive_webhook(connector: str, request: Request) -> JSONResponse:
    res = request.app.state.resources
    marketplace = res.integrations.marketplaces.get(connector)
    if marketplace is None:
        raise NotFound(f"No marketplace connector named {connector!r}.", code="unknown_connector")
    inbound = InboundRequest(
        body=await request.body(),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        client_ip=request.client.host if request.client else None,
    )
    return JSONResponse(
        await service.accept_notification(marketplace, connector, request.app.state.inbox, inbound)
    )


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class WebhookFastPath:
    """``POST /webhooks/<known connector>`` as plain ASGI; everything else goes to ``app``.

    It does what the middleware stack does for any request, no more: takes or makes the
    request id (bound for logs, returned in ``X-Request-ID``), refuses bodies over the
    limit with 413, counts the request in the same metrics, answers an unexpected
    failure with a logged 500 in the envelope, and sends the same security headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: Any,
        max_bytes: int,
        security_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.app = app
        self.state = state
        self.max_bytes = max_bytes
        # What the stack's SecurityHeadersMiddleware adds to a JSON answer (kit/security.py).
        self.security_headers = tuple(security_headers)
        self._requests: dict[int, Any] = {}
        self._latency = LATENCY.labels("POST", ROUTE)

    def _marketplace(self, path: str) -> tuple[str, MarketplaceConnector] | None:
        name = path[len(PREFIX) :]
        res: Resources | None = getattr(self.state, "resources", None)
        if res is None or not name or "/" in name:
            return None
        found = res.integrations.marketplaces.get(name)
        return (name, found) if found is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(PREFIX)
            or (target := self._marketplace(scope["path"])) is None
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            # The first of repeated headers, as the middleware reads X-Request-ID.
            headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        rid = clean_request_id(headers.get("x-request-id"))
        token = set_request_id(rid)
        status = 500
        try:
            try:
                status, answer = await self._handle(scope, receive, headers, *target)
            except _Disconnected:
                status = 499  # nothing stored, nobody to answer (nginx's code for it)
                return
            except Exception:
                log.exception("unhandled_error", path=scope["path"], method="POST")
                answer = envelope(
                    "internal_error", "An internal error occurred; it has been logged."
                )
            await send_json(
                send, status, answer, [(b"x-request-id", rid.encode()), *self.security_headers]
            )
        finally:
            counter = self._requests.get(status)
            if counter is None:
                counter = self._requests[status] = REQUESTS.labels("POST", ROUTE, str(status))
            counter.inc()
            self._latency.observe(time.perf_counter() - started)
            reset_request_id(token)
            structlog.contextvars.clear_contextvars()

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        connector: str,
        marketplace: MarketplaceConnector,
    ) -> tuple[int, dict[str, Any]]:
        try:
            body = await self._body(receive, headers.get("content-length"))
        except _TooLarge:
            return 413, envelope(
                "payload_too_large",
                f"The request body is larger than {self.max_bytes} bytes.",
                {"max_bytes": self.max_bytes},
            )
        except ValueError:
            return 400, envelope("bad_request", "The Content-Length header is not valid.")
        query = scope["query_string"]
        client = scope.get("client")
        inbound = InboundRequest(
            body=body,
            headers=headers,
            query=dict(parse_qsl(query.decode("latin-1"))) if query else {},
            client_ip=client[0] if client else None,
        )
        try:
            return 200, await service.accept_notification(
                marketplace, connector, self.state.inbox, inbound
            )
        except AppError as exc:
            return exc.status_code, envelope(exc.code, exc.message, exc.details)

    async def _body(self, receive: Receive, declared: str | None) -> bytes:
        if declared is not None:
            size = int(declared)  # ValueError: answered 400
            if size < 0:
                raise ValueError(declared)
            if size > self.max_bytes:
                raise _TooLarge
        chunks: list[bytes] = []
        received = 0
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                raise _Disconnected
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
