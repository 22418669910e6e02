"""Notifications into the inbox (what the webhook route and its fast path both run), and
an inbox event processed again, as if it had just arrived."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit import jobs
from conexapi.kit.context import get_request_id
from conexapi.kit.errors import BadRequest, ServiceUnavailable
from conexapi.kit.jsondepth import MAX_DEPTH, nested_deeper_than
from conexapi.kit.tasks import PROCESS_EVENT
from conexapi.models import EventStatus, WebhookEvent, utcnow
from conexapi.webhooks.inbox import InboxItem, InboxWriter
from connectors.base import InboundRequest, MarketplaceConnector
from connectors.errors import InvalidNotification


async def accept_notification(
    marketplace: MarketplaceConnector, connector: str, inbox: InboxWriter, inbound: InboundRequest
) -> dict[str, Any]:
    """Verify, commit to the inbox and return the acknowledgement (``WebhookAck``'s shape).

    Raises :class:`AppError` for what the sender must see as an error: 400 for a body the
    connector refuses or one nested too deeply, 503 when it could not be committed.
    """
    if nested_deeper_than(inbound.body):
        # Before the connector's parser, which recurses per level (RecursionError, a 500),
        # and before the inbox, whose readers parse the payload again on deeper stacks.
        raise BadRequest(
            f"The body nests arrays or objects more than {MAX_DEPTH} levels deep; "
            "send the notification as the marketplace documents it.",
            code="body_too_deep",
            details={"max_depth": MAX_DEPTH},
        )
    try:
        note = marketplace.parse_notification(inbound)
    except InvalidNotification as exc:
        raise BadRequest(
            exc.message, code=exc.code or "invalid_notification", details={"field": exc.field}
        ) from None
    payload = _payload_text(inbound.body)
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
    return {
        "status": "ok",
        "event_id": result.event_id,
        "duplicate": result.duplicate,
        "event_status": result.status,
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _payload_text(body: bytes) -> str:
    """The body as the inbox keeps it: as received when it is strict JSON, else wrapped.

    Strict: Python's parser takes NaN and Infinity, which no JSON column accepts.
    """
    try:
        text = body.decode("utf-8")
        json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # the connector accepted a body that is not JSON: keep it as text
        return json.dumps({"raw": body.decode("utf-8", "replace")})
    return text


async def replay_event(session: AsyncSession, event_id: int) -> WebhookEvent | None:
    """Process an inbox event again, as if it had just arrived."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        return None
    event.status = EventStatus.queued
    event.ignore_reason = None
    event.processed_at = None
    event.last_error = None
    event.enqueued_at = utcnow()
    jobs.enqueue(PROCESS_EVENT, event.id)
    return event
