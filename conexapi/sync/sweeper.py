"""The sweeper: nothing accepted is left behind.

Runs periodically (beat). It sends again what the broker may have lost and starts what is
due: inbox events never processed, queued runs whose job vanished, runs whose worker died
(heartbeat stopped), retries whose ``next_attempt_at`` has come, orders parked on a
mapping that now exists and orders waiting for a connection that is active again.
Every action is safe to repeat: runs are claimed in the database, not by the broker.

So a job is sent again as soon as it has waited longer than a job waits in practice, not
after the broker's visibility timeout: a re-sent job whose first copy was merely slow does
nothing twice. Its events are taken under their row locks and only while still waiting
(``take_events``), so exactly one job turns them into runs; a run is started only by the
claim that moves it from ``queued`` (or ``running`` with a stale heartbeat) to
``running`` in one UPDATE, so exactly one job makes its calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.resources import Resources
from conexapi.kit.tasks import EXECUTE_RUN, PROCESS_EVENT
from conexapi.models import (
    Connection,
    ConnectionStatus,
    EventStatus,
    Mapping,
    OrderState,
    OrderSync,
    Pipeline,
    PipelineStatus,
    RunStatus,
    SyncRun,
    WebhookEvent,
    utcnow,
)
from conexapi.models.base import database_utcnow
from conexapi.sync.service import request_sync
from conexapi.webhooks.inbox import EVENTS_PER_JOB

log = structlog.get_logger(__name__)

BATCH = 500


@dataclass
class SweepReport:
    events_enqueued: int = 0
    runs_requeued: int = 0
    retries_started: int = 0
    mapping_resumed: int = 0
    reauth_resumed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def sweep(res: Resources) -> SweepReport:
    s_ = res.settings
    now = utcnow()
    report = SweepReport()
    received_grace = now - timedelta(seconds=max(s_.sweeper_interval_seconds / 2, 2))
    queued_lost = now - timedelta(seconds=s_.queued_event_requeue_seconds)
    # On the clock heartbeats are written with (see claim.heartbeat).
    stale = database_utcnow(res.engine.dialect.name, s_.run_heartbeat_timeout_seconds)
    forgotten = now - timedelta(seconds=s_.queued_run_requeue_seconds)

    async with res.sessionmaker() as session:
        event_ids = list(
            await session.scalars(
                select(WebhookEvent.id)
                .where(
                    (
                        (WebhookEvent.status == EventStatus.received)
                        & (WebhookEvent.received_at < received_grace)
                    )
                    | (
                        (WebhookEvent.status == EventStatus.queued)
                        & (WebhookEvent.enqueued_at < queued_lost)
                    )
                )
                .order_by(WebhookEvent.id)
                .limit(BATCH)
            )
        )
        # A queued run's heartbeat records when its job was last sent.
        run_ids = list(
            await session.scalars(
                select(SyncRun.id)
                .where(
                    ((SyncRun.status == RunStatus.running) & (SyncRun.heartbeat_at < stale))
                    | (
                        (SyncRun.status == RunStatus.queued)
                        & (func.coalesce(SyncRun.heartbeat_at, SyncRun.created_at) < forgotten)
                    )
                )
                .order_by(SyncRun.id)
                .limit(BATCH)
            )
        )
    batches = [
        jobs.Job(PROCESS_EVENT, tuple(event_ids[i : i + EVENTS_PER_JOB]))
        for i in range(0, len(event_ids), EVENTS_PER_JOB)
    ]
    if batches and await jobs.send_now(batches):
        report.events_enqueued = len(event_ids)
        async with unit_of_work(res.sessionmaker) as session:
            await session.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id.in_(event_ids),
                    # One a worker ingested meanwhile stays processed.
                    WebhookEvent.status.in_((EventStatus.received, EventStatus.queued)),
                )
                .values(status=EventStatus.queued, enqueued_at=now)
            )
    if run_ids and await jobs.send_now([jobs.Job(EXECUTE_RUN, (i,)) for i in run_ids]):
        report.runs_requeued = len(run_ids)
        async with unit_of_work(res.sessionmaker) as session:
            await session.execute(
                update(SyncRun)
                .where(SyncRun.id.in_(run_ids), SyncRun.status == RunStatus.queued)
                .values(heartbeat_at=now)
            )

    async with unit_of_work(res.sessionmaker) as session:
        source = aliased(Connection)
        target = aliased(Connection)
        both_active = (
            select(OrderSync)
            .join(Pipeline, Pipeline.id == OrderSync.pipeline_id)
            .join(source, source.id == Pipeline.source_connection_id)
            .join(target, target.id == Pipeline.target_connection_id)
            .where(
                Pipeline.status == PipelineStatus.active,
                source.status == ConnectionStatus.active,
                target.status == ConnectionStatus.active,
            )
        )
        due = await session.scalars(
            both_active.where(
                OrderSync.state == OrderState.retry_scheduled, OrderSync.next_attempt_at <= now
            )
            .order_by(OrderSync.next_attempt_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        for order in due.all():
            if await request_sync(session, order, "sweeper") is not None:
                report.retries_started += 1

        latest_mapping = (
            select(Mapping.pipeline_id, func.max(Mapping.updated_at).label("changed"))
            .group_by(Mapping.pipeline_id)
            .subquery()
        )
        parked = await session.scalars(
            both_active.join(latest_mapping, latest_mapping.c.pipeline_id == Pipeline.id)
            .where(
                OrderSync.state == OrderState.needs_mapping,
                latest_mapping.c.changed > OrderSync.updated_at,
            )
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        for order in parked.all():
            if await request_sync(session, order, "sweeper") is not None:
                report.mapping_resumed += 1

        waiting = await session.scalars(
            both_active.where(OrderSync.state == OrderState.needs_reauth)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        for order in waiting.all():
            if await request_sync(session, order, "sweeper") is not None:
                report.reauth_resumed += 1

    if any(asdict(report).values()):
        log.info("sweep", **report.as_dict())
    return report
