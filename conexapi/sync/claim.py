"""Claiming a run, and holding it while it works.

A claim marks the run ``running`` with a heartbeat, loads its order, pipeline, connections
and mappings, binds the order to its ERP document key, and commits all that before any
upstream call goes out: whatever happens next, every attempt of the order uses that key.
A run whose worker died (its heartbeat stale) is claimed again by whoever gets its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog
from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from conexapi.db import unit_of_work
from conexapi.models import (
    Connection,
    Mapping,
    OrderState,
    OrderSync,
    Pipeline,
    PipelineStatus,
    RunStatus,
    SyncRun,
    utcnow,
)
from conexapi.models.base import database_utcnow
from conexapi.pipelines.schemas import erp_settings
from conexapi.sync.context import SyncContext
from conexapi.sync.mapping import Mappings
from conexapi.sync.outcome import ErrorClass, Outcome
from connectors.documents import PipelineRules
from connectors.errors import DataError

log = structlog.get_logger(__name__)

FIRST_SEEN = Counter("conexapi_orders_first_seen_total", "How each order was first seen", ["via"])

#: Heartbeats a run writes per heartbeat timeout: a live run is taken over only after
#: this many beats in a row were missed (see ``run_heartbeat_timeout_seconds``).
HEARTBEATS_PER_TIMEOUT = 6


def worker_name() -> str:
    """Who holds a run: read at each claim, so forked worker children never share one."""
    return f"{socket.gethostname()}:{os.getpid()}"


class NotClaimed(StrEnum):
    """Why a run was not claimed (the task logs it; ``busy`` is worth trying again)."""

    #: No such run.
    missing = "missing"
    #: A live worker holds it.
    busy = "busy"
    #: It ended already (or waits for the sweeper to queue it again).
    finished = "finished"
    #: Its pipeline is paused or stopped: the run waits, its order stays where it is.
    pipeline_inactive = "pipeline_inactive"
    #: The order row's id is not one the marketplace writes: parked for a person.
    key_invalid = "key_invalid"
    #: The order is bound to another document key than its id gives now: parked.
    key_mismatch = "key_mismatch"


@dataclass(frozen=True)
class Claimed:
    run_id: int
    order_sync_id: int
    external_order_id: str
    pipeline_id: int
    source: Connection
    target: Connection
    settings: PipelineRules
    mappings: Mappings
    invoiced: bool
    idempotency_key: str | None
    started: float
    #: This run's attempt for the order (1 for its first run).
    attempt: int = 1


#: Built once: an alias made per query costs more CPU than the query's round trip.
_SOURCE, _TARGET = aliased(Connection, name="source"), aliased(Connection, name="target")


async def locked_run_and_order(s: AsyncSession, run_id: int) -> tuple[SyncRun, OrderSync]:
    """The run and its order, both locked (run first, as every writer of them), in one
    round trip; fresh from the database even if the session holds them already."""
    run, order = (
        await s.execute(
            select(SyncRun, OrderSync)
            .join(OrderSync, OrderSync.id == SyncRun.order_sync_id)
            .where(SyncRun.id == run_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return run, order


def _park(run: SyncRun, order: OrderSync, out: Outcome, now: datetime) -> None:
    """End the run at its claim with ``out``; the order row says why, as after any run
    (it is where an operator looks first)."""
    run.status = out.run_status
    run.finished_at = now
    run.error_class = out.error_class
    run.error_code = out.error_code
    run.error_message = out.message
    order.state = out.state
    order.last_error_class, order.last_error_code = out.error_class, out.error_code
    order.last_error_message = out.message


async def claim(ctx: SyncContext, run_id: int) -> Claimed | NotClaimed:
    now = utcnow()
    dialect = ctx.res.engine.dialect.name
    # Heartbeats are written and judged on the database's clock (see heartbeat).
    stale = database_utcnow(dialect, ctx.res.settings.run_heartbeat_timeout_seconds)
    async with unit_of_work(ctx.res.sessionmaker) as s:
        result = await s.execute(
            update(SyncRun)
            .where(
                SyncRun.id == run_id,
                or_(
                    SyncRun.status == RunStatus.queued,
                    and_(SyncRun.status == RunStatus.running, SyncRun.heartbeat_at < stale),
                ),
            )
            .values(
                status=RunStatus.running,
                started_at=now,
                heartbeat_at=database_utcnow(dialect),
                worker=worker_name(),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            run = await s.get(SyncRun, run_id)
            if run is None:
                return NotClaimed.missing
            return NotClaimed.busy if run.status == RunStatus.running else NotClaimed.finished
        run, order = await locked_run_and_order(s, run_id)
        row = (
            await s.execute(
                select(Pipeline, _SOURCE, _TARGET)
                .join(_SOURCE, _SOURCE.id == Pipeline.source_connection_id)
                .join(_TARGET, _TARGET.id == Pipeline.target_connection_id)
                .where(Pipeline.id == order.pipeline_id)
            )
        ).one()
        pipeline, source, target = row
        if pipeline.status != PipelineStatus.active:
            # A paused or stopped pipeline keeps its orders where they are.
            run.status = RunStatus.waiting
            run.finished_at = now
            run.error_class = ErrorClass.paused
            run.error_message = f"pipeline is {pipeline.status}"
            return NotClaimed.pipeline_inactive
        rows = await s.scalars(select(Mapping).where(Mapping.pipeline_id == pipeline.id))
        mappings = Mappings()
        for m in rows:
            getattr(mappings, m.kind)[m.source_value] = m.target_value
        # The binding of this order to its ERP document key is committed with the claim,
        # before any call goes out: whatever happens next, every attempt uses this key.
        try:
            key = ctx.integrations.marketplace(source.connector).idempotency_key(
                order.external_order_id
            )
        except DataError as exc:
            # An id in a spelling the marketplace never writes (a row left by a forged
            # notification): it would fetch another row's order and invoice it again.
            _park(run, order, Outcome.invalid_order_id(exc), now)
            return NotClaimed.key_invalid
        if order.idempotency_key is None:
            order.idempotency_key = key
        elif order.idempotency_key != key:
            _park(run, order, Outcome.key_mismatch(order.idempotency_key, key), now)
            return NotClaimed.key_mismatch
        order.attempts += 1
        run.attempt = order.attempts
        if order.attempts == 1:
            FIRST_SEEN.labels(order.first_seen_via).inc()
        order.state = OrderState.in_progress
        return Claimed(
            run_id=run.id,
            order_sync_id=order.id,
            external_order_id=order.external_order_id,
            pipeline_id=pipeline.id,
            source=source,
            target=target,
            settings=erp_settings(target.connector, pipeline.settings),
            mappings=mappings,
            invoiced=order.erp_document_id is not None,
            idempotency_key=order.idempotency_key,
            started=time.perf_counter(),
            attempt=order.attempts,
        )


@contextlib.asynccontextmanager
async def heartbeat(
    sessionmaker: async_sessionmaker[AsyncSession], dialect: str, run_id: int, interval: float
) -> AsyncIterator[None]:
    """Keep the run's heartbeat fresh while it works, so the sweeper leaves it alone.

    The time written is the database's, and so is the one a claimer compares it with:
    a worker whose clock runs behind would otherwise have its live runs taken over, and
    one whose clock runs ahead would keep its dead runs from being taken over.
    """

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                async with sessionmaker() as s:
                    await s.execute(
                        update(SyncRun)
                        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.running)
                        .values(heartbeat_at=database_utcnow(dialect))
                    )
                    await s.commit()
            except Exception as exc:  # a missed beat only risks an early takeover
                log.warning("heartbeat_failed", run_id=run_id, error=str(exc))

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = [
    "HEARTBEATS_PER_TIMEOUT",
    "Claimed",
    "NotClaimed",
    "claim",
    "heartbeat",
    "locked_run_and_order",
    "worker_name",
]
