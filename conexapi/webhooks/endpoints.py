"""``POST /webhooks/{connector}``: verify, commit to the inbox, answer 200, enqueue.

No upstream call happens here. A notification we do not act on (another topic, a seller
nobody linked) still gets its 200 and is recorded as ignored: anything else makes Mercado
Libre retry for an hour and, in time, disable the topic.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from conexapi.integrations import integrations
from conexapi.kit.context import get_request_id
from conexapi.kit.errors import BadRequest, NotFound, ServiceUnavailable
from conexapi.webhooks.inbox import InboxItem, InboxWriter
from connectors.base import InboundRequest
from connectors.errors import InvalidNotification

router = APIRouter(tags=["webhooks"])


class WebhookAck(BaseModel):
    status: str = "ok"
    event_id: int
    duplicate: bool
    event_status: str


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post(
    "/webhooks/{connector}",
    response_model=WebhookAck,
    summary="Receive a marketplace notification",
    responses={
        400: {"description": "Malformed or unverifiable"},
        413: {"description": "Too large"},
    },
)
async def receive_webhook(connector: str, request: Request) -> JSONResponse:
    res = request.app.state.resources
    marketplace = integrations(res).marketplaces.get(connector)
    if marketplace is None:
        raise NotFound(f"No marketplace connector named {connector!r}.", code="unknown_connector")
    body = await request.body()
    inbound = InboundRequest(
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        client_ip=_client_ip(request),
    )
    try:
        note = marketplace.parse_notification(inbound)
    except InvalidNotification as exc:
        raise BadRequest(
            exc.message, code=exc.code or "invalid_notification", details={"field": exc.field}
        ) from None
    try:
        payload: dict[str, Any] = json.loads(body)
    except ValueError:  # the connector accepted it, so this is not JSON we keep as is
        payload = {"raw": body.decode("utf-8", "replace")}
    inbox: InboxWriter = request.app.state.inbox
    try:
        result = await inbox.submit(
            InboxItem(
                connector=connector,
                dedupe_key=note.dedupe_key,
                topic=note.topic,
                resource=note.resource,
                order_id=note.order_id,
                account_id=note.account_id,
                payload=payload,
                ignore_reason=note.ignore_reason,
                correlation_id=get_request_id(),
            )
        )
    except Exception:
        # Not committed: the sender must retry, so it must not see a 200.
        raise ServiceUnavailable(
            "The notification could not be stored; retry later.", code="inbox_unavailable"
        ) from None
    # Built by hand: this answer is the hot path, and its shape is WebhookAck's.
    return JSONResponse(
        {
            "status": "ok",
            "event_id": result.event_id,
            "duplicate": result.duplicate,
            "event_status": result.status,
        }
    )
