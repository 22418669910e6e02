"""Orders and runs: who may run, when, and what a finished run leaves behind.

At most one run per order is active (queued or running). The database enforces it with a
UNIQUE index on a generated column (see ``models/sync.py``); the code below also takes the
order row's lock first, so that a request arriving while a run is ending either sees the
run still active (and asks it to run once more) or sees it finished (and starts a new one),
never neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import structlog
from sqlalchemy import insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from conexapi.kit import jobs
from conexapi.kit.tasks import EXECUTE_RUN
from conexapi.models import (
    ACTIVE_RUN_STATUSES,
    Connection,
    EventStatus,
    OrderSync,
    Pipeline,
    PipelineStatus,
    RunStatus,
    SyncRun,
    WebhookEvent,
    utcnow,
)

log = structlog.get_logger(__name__)


async def get_or_create_order(
    session: AsyncSession, pipeline_id: int, external_order_id: str, seen_via: str
) -> OrderSync:
    order, _ = await locked_order(session, pipeline_id, external_order_id, seen_via)
    return order


async def locked_order(
    session: AsyncSession, pipeline_id: int, external_order_id: str, seen_via: str
) -> tuple[OrderSync, bool]:
    """The order's row, locked, created if new; and whether this call created it.

    A new order is inserted with the database's "insert unless the key exists" (a
    concurrent request may be creating the same one), then read back locked: three round
    trips instead of a savepoint's four, and none of them wasted on a retry.
    """
    stmt = (
        select(OrderSync)
        .where(
            OrderSync.pipeline_id == pipeline_id, OrderSync.external_order_id == external_order_id
        )
        .with_for_update()
    )
    order = await session.scalar(stmt)
    if order is not None:
        return order, False
    values = {
        "pipeline_id": pipeline_id,
        "external_order_id": external_order_id,
        "first_seen_via": seen_via,
    }
    insert_new: Insert
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        insert_new = sqlite_insert(OrderSync).values(values).on_conflict_do_nothing()
    else:
        insert_new = insert(OrderSync).values(values).prefix_with("IGNORE")
    created = (await session.execute(insert_new)).rowcount == 1  # type: ignore[attr-defined]
    order = await session.scalar(stmt)
    assert order is not None
    return order, created


async def active_run(session: AsyncSession, order_id: int) -> SyncRun | None:
    return await session.scalar(
        select(SyncRun).where(
            SyncRun.order_sync_id == order_id, SyncRun.status.in_(ACTIVE_RUN_STATUSES)
        )
    )


async def request_sync(
    session: AsyncSession,
    order: OrderSync,
    trigger: str,
    *,
    event_id: int | None = None,
    correlation_id: str | None = None,
    send_job: bool = True,
    new_order: bool = False,
) -> SyncRun | None:
    """Queue a run for ``order`` (locked by the caller) unless one is already active.

    A queued run will read the order as it is when it starts, so a newer notification
    simply joins it. A running one may have read the order already: it is asked to run
    once more when it ends. ``new_order``: created in this transaction, so it has no run.
    """
    current = None if new_order else await active_run(session, order.id)
    if current is not None:
        if current.status == RunStatus.running:
            order.rerun_requested = True
        return None
    run = SyncRun(
        order_sync_id=order.id,
        trigger=trigger,
        status=RunStatus.queued,
        webhook_event_id=event_id,
        correlation_id=correlation_id,
        attempt=order.attempts + 1,
        upstream_request_ids=[],
    )
    # No savepoint: the caller holds the order row's lock, so no run can have been
    # queued since the read above. The UNIQUE active-run index stays the backstop; if it
    # ever fires, the whole unit of work fails and is retried, nothing is half-done.
    session.add(run)
    await session.flush()
    if send_job:
        jobs.enqueue(EXECUTE_RUN, run.id)
    return run


async def take_events(
    session: AsyncSession, *, ids: Sequence[int] | None = None, limit: int = 0
) -> list[WebhookEvent]:
    """Lock inbox events not yet turned into runs.

    ``ids``: a job's own events, waited for when another transaction holds them (the
    API marking them queued, another worker ingesting them, after which they are no
    longer waiting): a job never leaves its own events behind.

    ``limit``: the oldest waiting events no other transaction holds (``SKIP LOCKED``),
    for a worker with free slots. Chosen first without locks, then locked by primary
    key, so that only those rows are locked, whatever plan sorts the waiting ones.
    """
    waiting = WebhookEvent.status.in_((EventStatus.received, EventStatus.queued))
    if ids is not None:
        # By primary key (the hint), so that no plan through the status index locks or
        # waits on other jobs' events.
        query = (
            select(WebhookEvent)
            .with_hint(WebhookEvent, "USE INDEX (PRIMARY)", "mysql")
            .where(waiting, WebhookEvent.id.in_(list(ids)))
        )
        return list(await session.scalars(query.order_by(WebhookEvent.id).with_for_update()))
    oldest = list(
        await session.scalars(
            select(WebhookEvent.id).where(waiting).order_by(WebhookEvent.id).limit(limit)
        )
    )
    if not oldest:
        return []
    query = select(WebhookEvent).where(waiting, WebhookEvent.id.in_(oldest))
    return list(
        await session.scalars(query.order_by(WebhookEvent.id).with_for_update(skip_locked=True))
    )


async def ingest_events(
    session: AsyncSession, events: Sequence[WebhookEvent], *, send_jobs: bool = True
) -> list[int]:
    """Turn locked inbox events into runs; the ids of the runs queued.

    In order-id order, so that two transactions ingesting overlapping batches lock the
    same orders in the same order (no deadlock between them).
    """
    now = utcnow()
    run_ids: list[int] = []
    feeds: dict[tuple[str, str], list[Pipeline]] = {}
    for event in sorted(events, key=lambda e: (len(e.order_id or ""), e.order_id or "", e.id)):
        if not event.order_id:
            event.status = EventStatus.ignored
            event.ignore_reason = event.ignore_reason or "no_order"
            event.processed_at = now
            continue
        account = (event.connector, event.external_account_id)
        pipelines = feeds.get(account)
        if pipelines is None:
            pipelines = feeds[account] = list(
                await session.scalars(
                    select(Pipeline)
                    .join(Connection, Connection.id == Pipeline.source_connection_id)
                    .where(
                        Connection.connector == event.connector,
                        Connection.external_account_id == event.external_account_id,
                        Pipeline.status == PipelineStatus.active,
                    )
                )
            )
        for pipeline in pipelines:
            order, created = await locked_order(session, pipeline.id, event.order_id, "webhook")
            run = await request_sync(
                session,
                order,
                "webhook",
                event_id=event.id,
                correlation_id=event.correlation_id,
                send_job=send_jobs,
                new_order=created,
            )
            if run is not None:
                run_ids.append(run.id)
        if pipelines:
            event.status = EventStatus.processed
        else:
            event.status = EventStatus.ignored
            event.ignore_reason = "no_active_pipeline"
        event.processed_at = now
    return run_ids


def backoff(
    attempt: int, retry_after: float | None, rng_value: float, first: float = 30.0
) -> timedelta:
    """Exponential back-off with jitter (half to full), at least ``retry_after``."""
    base = min(first * (2 ** max(attempt - 1, 0)), 3600.0)
    delay = base * (0.5 + rng_value / 2)
    if retry_after:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)
