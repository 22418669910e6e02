"""Queries behind the webhook-events endpoints, always within the caller's scope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import event_clause
from conexapi.models import EventStatus, WebhookEvent

EVENT_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": WebhookEvent.id,
    "received_at": WebhookEvent.received_at,
}


def events(
    principal: Principal,
    *,
    merchant_id: int | None = None,
    statuses: Sequence[EventStatus] | None = None,
    topic: str | None = None,
    connector: str | None = None,
    order_id: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
) -> Select[WebhookEvent]:
    stmt = select(WebhookEvent).where(event_clause(principal, merchant_id))
    if statuses:
        stmt = stmt.where(WebhookEvent.status.in_([s.value for s in statuses]))
    if topic is not None:
        stmt = stmt.where(WebhookEvent.topic == topic)
    if connector is not None:
        stmt = stmt.where(WebhookEvent.connector == connector)
    if order_id is not None:
        stmt = stmt.where(WebhookEvent.order_id == order_id)
    if received_from is not None:
        stmt = stmt.where(WebhookEvent.received_at >= received_from)
    if received_to is not None:
        stmt = stmt.where(WebhookEvent.received_at < received_to)
    return stmt


async def event_ids(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    merchant_id: int | None = None,
    event_ids: Sequence[int] | None = None,
    statuses: Sequence[EventStatus] | None = None,
    topic: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
) -> list[int]:
    """Ids of up to ``limit`` events a bulk replay matches, by id."""
    stmt = select(WebhookEvent.id).where(event_clause(principal, merchant_id))
    if event_ids is not None:
        stmt = stmt.where(WebhookEvent.id.in_(event_ids))
    if statuses:
        stmt = stmt.where(WebhookEvent.status.in_([s.value for s in statuses]))
    if topic is not None:
        stmt = stmt.where(WebhookEvent.topic == topic)
    if received_from is not None:
        stmt = stmt.where(WebhookEvent.received_at >= received_from)
    if received_to is not None:
        stmt = stmt.where(WebhookEvent.received_at < received_to)
    return list(await session.scalars(stmt.order_by(WebhookEvent.id).limit(limit)))
