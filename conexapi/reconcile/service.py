"""Reconcile: read the marketplace's orders updated in a window and sync what differs.

Webhooks get lost. Every few minutes each active pipeline reads the orders its seller's
marketplace account updated in ``[cursor - lookback, now - lag]`` (paging to the end),
compares them with what the product recorded and requests a run (trigger ``reconcile``)
for every order that is missing or changed. A run coalesces with one already queued, and
the ERP document is created under the order's idempotency key, so racing a webhook costs
nothing. The cursor moves only once a window is done: a failure halfway reads the window
again next time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from conexapi.connections.errors import ReauthRequired
from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.locks import LeaseTimeout, leases_for
from conexapi.kit.tasks import RECONCILE_PIPELINE
from conexapi.models import (
    Connection,
    ConnectionStatus,
    OrderSync,
    Pipeline,
    PipelineStatus,
    SyncCursor,
    utcnow,
)
from conexapi.reconcile.rules import Known, Window, needs_sync, windows
from conexapi.sync.context import SyncContext
from conexapi.sync.service import get_or_create_order, request_sync
from connectors.errors import ConnectorError
from connectors.models import Order

log = structlog.get_logger(__name__)

CURSOR = "reconcile"
TRIGGER = "reconcile"
#: Orders compared per transaction (one search page is 50).
BATCH = 50


@dataclass
class WindowResult:
    orders_seen: int = 0
    #: Orders the product had never seen: a webhook that never came.
    created: int = 0
    changed: int = 0
    #: Runs queued (a request that joined an active run is not counted).
    syncs_requested: int = 0
    run_ids: list[int] = field(default_factory=list)

    def add(self, other: WindowResult) -> None:
        self.orders_seen += other.orders_seen
        self.created += other.created
        self.changed += other.changed
        self.syncs_requested += other.syncs_requested
        self.run_ids += other.run_ids


@dataclass
class ReconcileResult:
    pipeline_id: int
    #: done, up_to_date, busy (another reconcile holds the pipeline), skipped, failed
    status: str
    windows: int = 0
    totals: WindowResult = field(default_factory=WindowResult)
    position: datetime | None = None
    error: str | None = None


def known_of(row: OrderSync | None) -> Known | None:
    if row is None:
        return None
    return Known(
        state=row.state,
        order_status=row.order_status,
        order_total=row.order_total,
        order_updated_at=row.order_updated_at,
        erp_document_id=row.erp_document_id,
        erp_document_name=row.erp_document_name,
        first_seen_via=row.first_seen_via,
    )


async def _apply(
    ctx: SyncContext, pipeline_id: int, orders: Sequence[Order], trigger: str
) -> WindowResult:
    result = WindowResult(orders_seen=len(orders))
    async with unit_of_work(ctx.res.sessionmaker) as session:
        rows = {
            row.external_order_id: row
            for row in await session.scalars(
                select(OrderSync).where(
                    OrderSync.pipeline_id == pipeline_id,
                    OrderSync.external_order_id.in_([o.external_id for o in orders]),
                )
            )
        }
        for order in orders:
            row = rows.get(order.external_id)
            if not needs_sync(known_of(row), order):
                continue
            if row is None:
                result.created += 1
            else:
                result.changed += 1
            # Locks the row (or creates it as first seen by reconcile) before asking.
            locked = await get_or_create_order(session, pipeline_id, order.external_id, TRIGGER)
            run = await request_sync(session, locked, trigger)
            if run is not None:
                await session.flush()
                result.syncs_requested += 1
                result.run_ids.append(run.id)
    return result


async def reconcile_window(
    ctx: SyncContext,
    pipeline_id: int,
    source: Connection,
    token: str,
    window: Window,
    *,
    trigger: str = TRIGGER,
) -> WindowResult:
    """Compare every order of ``source`` updated in ``window`` and request the syncs due.

    Orders are compared a page at a time, each page in its own transaction; no database
    transaction stays open across a call to the marketplace.
    """
    marketplace = ctx.integrations.marketplace(source.connector)
    result = WindowResult()
    batch: list[Order] = []
    async for order in marketplace.search_orders(
        token, source.external_account_id, window.start, window.end
    ):
        batch.append(order)
        if len(batch) >= BATCH:
            result.add(await _apply(ctx, pipeline_id, batch, trigger))
            batch = []
    if batch:
        result.add(await _apply(ctx, pipeline_id, batch, trigger))
    return result


# --- the cursor ---------------------------------------------------------------------------


async def _locked_cursor(session: AsyncSession, pipeline: Pipeline) -> SyncCursor:
    stmt = (
        select(SyncCursor)
        .where(SyncCursor.pipeline_id == pipeline.id, SyncCursor.name == CURSOR)
        .with_for_update()
    )
    cursor = await session.scalar(stmt)
    if cursor is not None:
        return cursor
    try:
        async with session.begin_nested():
            # A new pipeline starts reading where it was created; older sales are a
            # backfill's job (``conexapi backfill``), not a surprise of the first tick.
            cursor = SyncCursor(
                pipeline_id=pipeline.id,
                name=CURSOR,
                position=pipeline.created_at,
                orders_seen=0,
                syncs_requested=0,
            )
            session.add(cursor)
    except IntegrityError:
        cursor = await session.scalar(stmt)
        assert cursor is not None
    return cursor


async def cursor_position(ctx: SyncContext, pipeline_id: int) -> datetime | None:
    async with unit_of_work(ctx.res.sessionmaker) as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None:
            return None
        return (await _locked_cursor(session, pipeline)).position


async def _record(
    ctx: SyncContext,
    pipeline_id: int,
    *,
    position: datetime | None = None,
    result: WindowResult | None = None,
    error: str | None = None,
) -> datetime | None:
    now = utcnow()
    async with unit_of_work(ctx.res.sessionmaker) as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None:
            return None
        cursor = await _locked_cursor(session, pipeline)
        cursor.last_run_at = now
        if position is not None and position > cursor.position:
            cursor.position = position
        if error is not None:
            cursor.last_error = error[:1000]
        else:
            cursor.last_error = None
            cursor.last_success_at = now
        if result is not None:
            cursor.orders_seen = result.orders_seen
            cursor.syncs_requested = result.syncs_requested
        return cursor.position


# --- the periodic job -----------------------------------------------------------------------


async def usable_source(ctx: SyncContext, pipeline_id: int) -> tuple[Pipeline, Connection] | str:
    """The pipeline and its marketplace connection, or why it cannot be reconciled now.

    Both connections must be active: runs requested while one is not would only wait.
    The cursor stays where it is meanwhile, so once the pipeline can work again the next
    windows pick up what changed in between, and orders left pending are asked again.
    """
    async with ctx.res.sessionmaker() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None:
            return "pipeline not found"
        if pipeline.status != PipelineStatus.active:
            return f"pipeline is {pipeline.status}"
        source = await session.get(Connection, pipeline.source_connection_id)
        target = await session.get(Connection, pipeline.target_connection_id)
        for conn, role in ((source, "marketplace"), (target, "ERP")):
            if conn is None or conn.status != ConnectionStatus.active:
                return f"{role} connection is {conn.status if conn else 'missing'}"
        assert source is not None
        return pipeline, source


async def reconcile_pipeline(
    ctx: SyncContext, pipeline_id: int, *, now: datetime | None = None
) -> ReconcileResult:
    """Bring the pipeline's cursor up to ``now - lag``, window by window.

    One reconcile per pipeline at a time across every process (a lease); a second one
    meanwhile returns ``busy`` at once, since the first does the same work.
    """
    settings = ctx.res.settings
    leases = leases_for(ctx.res.redis, "conexapi:lease:")
    ttl = max(settings.reconcile_interval_seconds * 2, 600.0)
    try:
        async with leases.hold(f"reconcile:{pipeline_id}", ttl=ttl, wait=0):
            return await _reconcile_held(ctx, pipeline_id, now or utcnow())
    except LeaseTimeout:
        return ReconcileResult(pipeline_id, "busy")


async def _reconcile_held(ctx: SyncContext, pipeline_id: int, now: datetime) -> ReconcileResult:
    settings = ctx.res.settings
    found = await usable_source(ctx, pipeline_id)
    if isinstance(found, str):
        return ReconcileResult(pipeline_id, "skipped", error=found)
    _, source = found
    position = await cursor_position(ctx, pipeline_id)
    if position is None:
        return ReconcileResult(pipeline_id, "skipped", error="pipeline not found")
    todo = windows(
        position,
        now,
        lookback=timedelta(seconds=settings.reconcile_lookback_seconds),
        lag=timedelta(seconds=settings.reconcile_lag_seconds),
        max_span=timedelta(seconds=settings.reconcile_max_window_seconds),
    )
    result = ReconcileResult(pipeline_id, "up_to_date", position=position)
    if not todo:
        return result
    try:
        token = await ctx.access_token(source)
    except (ReauthRequired, ConnectorError) as exc:
        result.status, result.error = "skipped", str(exc)
        await _record(ctx, pipeline_id, error=f"no access token: {exc}")
        return result
    for window in todo:
        try:
            done = await reconcile_window(ctx, pipeline_id, source, token, window)
        except ConnectorError as exc:
            result.status, result.error = "failed", f"{exc.kind}: {exc}"
            log.warning(
                "reconcile_window_failed",
                pipeline_id=pipeline_id,
                window_start=window.start.isoformat(),
                window_end=window.end.isoformat(),
                error_class=exc.kind,
                error_code=exc.code,
            )
            await _record(ctx, pipeline_id, error=result.error)
            return result
        result.windows += 1
        result.totals.add(done)
        result.position = await _record(ctx, pipeline_id, position=window.end, result=done)
        if done.created:
            # Orders no webhook brought: one now and then is a lost notification; many
            # mean the marketplace stopped notifying (see first_seen in the reports).
            log.warning(
                "reconcile_found_unseen_orders",
                pipeline_id=pipeline_id,
                orders=done.created,
                window_start=window.start.isoformat(),
                window_end=window.end.isoformat(),
            )
    result.status = "done"
    log.info(
        "reconcile",
        pipeline_id=pipeline_id,
        windows=result.windows,
        orders=result.totals.orders_seen,
        created=result.totals.created,
        changed=result.totals.changed,
        syncs=result.totals.syncs_requested,
    )
    return result


async def active_pipeline_ids(ctx: SyncContext) -> list[int]:
    source, target = aliased(Connection), aliased(Connection)
    async with ctx.res.sessionmaker() as session:
        rows = await session.scalars(
            select(Pipeline.id)
            .join(source, source.id == Pipeline.source_connection_id)
            .join(target, target.id == Pipeline.target_connection_id)
            .where(
                Pipeline.status == PipelineStatus.active,
                source.status == ConnectionStatus.active,
                target.status == ConnectionStatus.active,
            )
            .order_by(Pipeline.id)
        )
        return list(rows)


async def reconcile_all(ctx: SyncContext) -> int:
    """The beat job: one reconcile job per active pipeline, spread over the workers."""
    ids = await active_pipeline_ids(ctx)
    if ids:
        await jobs.send_now([jobs.Job(RECONCILE_PIPELINE, (i,)) for i in ids])
    return len(ids)


async def first_seen_counts(
    session: AsyncSession, pipeline_id: int, since: datetime
) -> dict[str, int]:
    """How the pipeline's orders created since ``since`` were first seen (webhook,
    reconcile): a pipeline whose orders all come by reconcile has lost its webhooks."""
    rows = await session.execute(
        select(OrderSync.first_seen_via, func.count())
        .where(OrderSync.pipeline_id == pipeline_id, OrderSync.created_at >= since)
        .group_by(OrderSync.first_seen_via)
    )
    return {str(via): int(count) for via, count in rows.all()}
