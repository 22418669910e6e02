"""Housekeeping jobs: forget what must not be kept."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import null, select, update

from conexapi.db import unit_of_work
from conexapi.kit.resources import Resources
from conexapi.models import EventStatus, WebhookEvent, utcnow

log = structlog.get_logger(__name__)

#: Events cleared per transaction, so a large backlog never holds a long lock.
PRUNE_BATCH = 1000
#: Events still to be worked on keep their payload whatever their age.
_DONE = (EventStatus.processed, EventStatus.ignored, EventStatus.failed)


async def prune_inbox_payloads(res: Resources, *, now: datetime | None = None) -> int:
    """Erase the payloads of finished inbox events older than the retention.

    Payloads may hold buyer data; the event row (dedupe key, order id, times) stays, so
    a late duplicate is still recognised and the audit trail keeps its shape.
    """
    cutoff = (now or utcnow()) - timedelta(days=res.settings.inbox_payload_retention_days)
    pruned = 0
    while True:
        async with unit_of_work(res.sessionmaker) as session:
            ids = list(
                await session.scalars(
                    select(WebhookEvent.id)
                    .where(
                        WebhookEvent.received_at < cutoff,
                        WebhookEvent.status.in_(_DONE),
                        WebhookEvent.payload.is_not(None),
                    )
                    .order_by(WebhookEvent.id)
                    .limit(PRUNE_BATCH)
                )
            )
            if ids:
                # ``null()``: SQL NULL, not the JSON value null a plain None would store.
                await session.execute(
                    update(WebhookEvent).where(WebhookEvent.id.in_(ids)).values(payload=null())
                )
        pruned += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    if pruned:
        log.info("inbox_payloads_pruned", events=pruned, before=cutoff.isoformat())
    return pruned
