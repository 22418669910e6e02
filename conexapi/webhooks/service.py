"""The inbox as ops act on it: an event processed again, as if it had just arrived."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit import jobs
from conexapi.models import EventStatus, WebhookEvent, utcnow
from conexapi.webhooks.inbox import PROCESS_EVENT


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
