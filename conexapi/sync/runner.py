"""One run: claim it, pull the order, decide, map, push, record.

Upstream calls happen outside database transactions; each step that must survive a crash
is committed before the next call goes out (the claim, the idempotency key). The ERP
document is created under a deterministic idempotency key, so a retry after a timeout, a
worker killed mid-push or two runs racing all end with the invoice created first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from conexapi.db import in_unit_of_work, unit_of_work
from conexapi.kit.context import collect_upstream_ids
from conexapi.models import (
    ACTIVE_RUN_STATUSES,
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
from conexapi.pipelines.schemas import erp_settings
from conexapi.sync.context import ReauthRequired, SyncContext
from conexapi.sync.days import pipeline_zone
from conexapi.sync.exactly_once import create_once
from conexapi.sync.mapping import BuyerIncomplete, MappingMissing, Mappings
from conexapi.sync.policy import Decision, decide
from conexapi.sync.service import (
    backoff,
    ingest_events,
    request_sync,
    take_events,
)
from connectors.base import MarketplaceConnector
from connectors.documents import PipelineRules
from connectors.errors import AuthError, ConnectorError, DataError, TransientError
from connectors.models import ErpCredentials, Order

log = structlog.get_logger(__name__)

#: Events ingested in one unit of work (a job's own, in slices of this size).
INGEST_BATCH = 25


def worker_name() -> str:
    """Who holds a run: read at each claim, so forked worker children never share one."""
    return f"{socket.gethostname()}:{os.getpid()}"


RUNS = Counter("conexapi_sync_runs_total", "Finished sync runs", ["status", "error_class"])
RUN_SECONDS = Histogram(
    "conexapi_sync_run_seconds",
    "Duration of sync runs",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FIRST_SEEN = Counter("conexapi_orders_first_seen_total", "How each order was first seen", ["via"])


@dataclass
class Outcome:
    state: OrderState
    run_status: RunStatus
    error_class: str | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    invoice_id: str | None = None
    invoice_name: str | None = None
    invoice_total: Decimal | None = None
    stamp_status: str | None = None
    order: Order | None = None
    flag_connection: tuple[int, ConnectionStatus, str] | None = None
    extra: dict[str, str] = field(default_factory=dict)


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


async def _locked_run_and_order(s: AsyncSession, run_id: int) -> tuple[SyncRun, OrderSync]:
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


async def _claim(ctx: SyncContext, run_id: int) -> Claimed | str:
    now = utcnow()
    dialect = ctx.res.engine.dialect.name
    # Heartbeats are written and judged on the database's clock (see _heartbeat).
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
                return "missing"
            return "busy" if run.status == RunStatus.running else "finished"
        run, order = await _locked_run_and_order(s, run_id)
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
            run.error_class = "paused"
            run.error_message = f"pipeline is {pipeline.status}"
            return "pipeline_inactive"
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
            run.status = RunStatus.failed
            run.finished_at = now
            run.error_class = "data"
            run.error_code = exc.code or "invalid_order_id"
            run.error_message = f"{exc.message}; nothing was sent to the ERP"
            order.state = OrderState.needs_attention
            order.last_error_class, order.last_error_code = run.error_class, run.error_code
            order.last_error_message = run.error_message
            return "key_invalid"
        if order.idempotency_key is None:
            order.idempotency_key = key
        elif order.idempotency_key != key:
            run.status = RunStatus.failed
            run.finished_at = now
            run.error_class = "permanent"
            run.error_code = "idempotency_key_mismatch"
            run.error_message = f"order bound to key {order.idempotency_key}, not {key}"
            order.state = OrderState.needs_attention
            # The order row is where an operator looks first: it says why, as after any run.
            order.last_error_class = run.error_class
            order.last_error_code = run.error_code
            order.last_error_message = run.error_message
            return "key_mismatch"
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


#: Heartbeats a run writes per heartbeat timeout: a live run is taken over only after
#: this many beats in a row were missed (see ``run_heartbeat_timeout_seconds``).
HEARTBEATS_PER_TIMEOUT = 6


@contextlib.asynccontextmanager
async def _heartbeat(
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


def _not_the_order_claimed(
    marketplace: MarketplaceConnector, c: Claimed, order: Order
) -> Outcome | None:
    """None when the fetched order is the order row's, under the key the claim bound.

    The key is derived again from the fetched order's own id: a document for one order is
    never pushed under another order's key, whatever the marketplace answered.
    """
    try:
        fetched = marketplace.canonical_order_id(order.external_id)
        key = marketplace.idempotency_key(fetched)
    except DataError as exc:
        fetched, key = None, None
        problem = exc.message
    else:
        problem = f"the marketplace answered with order {fetched} (key {key})"
    if fetched == c.external_order_id and key == c.idempotency_key:
        return None
    return Outcome(
        OrderState.needs_attention,
        RunStatus.failed,
        error_class="data",
        error_code="order_id_mismatch",
        message=f"asked for order {c.external_order_id} (key {c.idempotency_key}), but "
        f"{problem}; nothing was sent to the ERP: check the order in the marketplace",
    )


async def _work(ctx: SyncContext, c: Claimed) -> Outcome:
    marketplace = ctx.integrations.marketplace(c.source.connector)
    for role, conn in (("source", c.source), ("target", c.target)):
        if conn.status != ConnectionStatus.active:
            # Its orders wait; the sweeper resumes them once the connection is active.
            return Outcome(
                OrderState.needs_reauth
                if conn.status == ConnectionStatus.needs_reauth
                else OrderState.pending,
                RunStatus.waiting,
                error_class="auth",
                error_code=f"{role}_{conn.status}",
                message=f"{conn.connector} connection is {conn.status}",
            )
    try:
        token = await ctx.access_token(c.source)
    except ReauthRequired as exc:
        return Outcome(
            OrderState.needs_reauth,
            RunStatus.waiting,
            error_class="auth",
            error_code="needs_reauth",
            message=str(exc),
        )
    try:
        order = await marketplace.fetch_order(token, c.external_order_id)
    except AuthError as exc:
        return Outcome(
            OrderState.needs_reauth,
            RunStatus.waiting,
            error_class="auth",
            error_code=exc.code,
            message=str(exc),
            flag_connection=(c.source.id, ConnectionStatus.needs_reauth, str(exc)),
        )
    mismatch = _not_the_order_claimed(marketplace, c, order)
    if mismatch is not None:
        return mismatch
    decision = decide(order, c.invoiced, c.settings)
    if decision is Decision.close:
        return Outcome(
            OrderState.closed,
            RunStatus.succeeded,
            order=order,
            message=f"order {order.raw_status} before invoicing",
        )
    if decision is Decision.wait_payment:
        return Outcome(
            OrderState.waiting_payment,
            RunStatus.waiting,
            order=order,
            message=f"order is {order.raw_status}",
        )
    if decision is Decision.already_invoiced:
        return Outcome(OrderState.invoiced, RunStatus.succeeded, order=order)
    if decision is Decision.flag_cancelled_after_invoice:
        return Outcome(
            OrderState.cancelled_after_invoice,
            RunStatus.succeeded,
            order=order,
            error_class="data",
            error_code="cancelled_after_invoice",
            message=f"order {order.raw_status} after invoicing: a credit note is needed",
        )
    if decision is Decision.flag_fraud:
        return Outcome(
            OrderState.needs_attention,
            RunStatus.failed,
            order=order,
            error_class="data",
            error_code="fraud_risk_detected",
            message="the marketplace flagged this order as fraud risk",
        )

    erp = ctx.integrations.erp(c.target.connector)
    today = datetime.now(pipeline_zone(c.target.connector, c.source.connector)).date()
    mapped = erp.build_document(order, c.settings, c.mappings, today)
    credentials: ErpCredentials = await ctx.erp_credentials(c.target)
    for code in mapped.fallback_codes:
        if await erp.find_product(credentials, code) is None:
            raise MappingMissing("sku", [code], f"no ERP product with code {code!r}")
    assert c.idempotency_key is not None  # reserved by the claim
    await erp.ensure_customer(credentials, mapped.customer)
    invoice = await create_once(erp, credentials, mapped.draft, c.idempotency_key, c.attempt)
    expected = sum((p.value for p in mapped.draft.payments), Decimal(0))
    outcome = Outcome(
        OrderState.invoiced,
        RunStatus.succeeded,
        order=order,
        invoice_id=invoice.id,
        invoice_name=invoice.name,
        invoice_total=invoice.total,
        stamp_status=invoice.stamp_status,
    )
    if invoice.total != expected:
        outcome.state = OrderState.needs_attention
        outcome.run_status = RunStatus.failed
        outcome.error_class = "data"
        outcome.error_code = "total_mismatch"
        outcome.message = f"ERP invoice total {invoice.total} differs from {expected}"
    return outcome


_OUTCOME_BY_KIND = {
    "transient": (OrderState.retry_scheduled, RunStatus.retry_scheduled),
    "auth": (OrderState.needs_reauth, RunStatus.waiting),
    "data": (OrderState.needs_attention, RunStatus.failed),
    "permanent": (OrderState.failed, RunStatus.failed),
}


def _classify(exc: Exception) -> Outcome:
    if isinstance(exc, MappingMissing):
        return Outcome(
            OrderState.needs_mapping,
            RunStatus.waiting,
            error_class="mapping",
            error_code=f"missing_{exc.kind}",
            message=exc.message,
        )
    if isinstance(exc, BuyerIncomplete):
        return Outcome(
            OrderState.retry_scheduled,
            RunStatus.retry_scheduled,
            error_class="transient",
            error_code="billing_info_pending",
            message=str(exc),
        )
    if isinstance(exc, ConnectorError):
        # The class the client gave the failure decides everything (ARCHITECTURE:
        # "errors are classified once"); an unclassified connector error is permanent.
        kind = exc.kind if exc.kind in _OUTCOME_BY_KIND else "permanent"
        state, status = _OUTCOME_BY_KIND[kind]
        return Outcome(
            state,
            status,
            error_class=kind,
            error_code=exc.code,
            message=str(exc),
            retry_after=exc.retry_after if isinstance(exc, TransientError) else None,
        )
    return Outcome(
        OrderState.retry_scheduled,
        RunStatus.retry_scheduled,
        error_class="internal",
        error_code=type(exc).__name__,
        message=f"internal error: {exc}"[:1000],
    )


async def _finish(ctx: SyncContext, c: Claimed, out: Outcome, upstream: list[str]) -> None:
    now = utcnow()
    async with unit_of_work(ctx.res.sessionmaker) as s:
        run, order = await _locked_run_and_order(s, c.run_id)
        if run.status != RunStatus.running or run.worker != worker_name():
            log.warning("run_taken_over", run_id=run.id)
            return
        # Only a retry has a next attempt (an order that gave up keeps none of the last one).
        order.next_attempt_at = None
        if out.state is OrderState.retry_scheduled:
            settings = c.settings
            age = now - order.created_at
            if age > timedelta(hours=settings.max_retry_hours):
                out.state, out.run_status = OrderState.failed, RunStatus.failed
                out.message = f"gave up after {order.attempts} attempts: {out.message}"
            else:
                order.next_attempt_at = now + backoff(
                    order.attempts,
                    out.retry_after,
                    random.random(),
                    ctx.res.settings.retry_base_seconds,
                )
        order.state = out.state
        order.last_error_class = out.error_class
        order.last_error_code = out.error_code
        order.last_error_message = (out.message or "")[:1000] or None
        if out.order is not None:
            order.order_status = out.order.raw_status
            order.order_total = out.order.total_amount + out.order.shipping_cost
            order.order_updated_at = out.order.updated_at
        if out.invoice_id:
            order.erp_document_id = out.invoice_id
            order.erp_document_name = out.invoice_name
            order.erp_total = out.invoice_total
            order.erp_stamp_status = out.stamp_status
        run.status = out.run_status
        run.finished_at = now
        run.duration_ms = int((time.perf_counter() - c.started) * 1000)
        run.error_class = out.error_class
        run.error_code = out.error_code
        run.error_message = out.message
        run.upstream_request_ids = upstream
        if out.flag_connection:
            conn = await s.get(Connection, out.flag_connection[0])
            if conn is not None and conn.status == ConnectionStatus.active:
                conn.status = out.flag_connection[1]
                conn.last_error = out.flag_connection[2][:1000]
        await s.flush()
        if order.rerun_requested and out.state is not OrderState.needs_reauth:
            order.rerun_requested = False
            await request_sync(s, order, run.trigger, correlation_id=run.correlation_id)
        RUNS.labels(out.run_status, out.error_class or "").inc()
        RUN_SECONDS.observe(run.duration_ms / 1000)
    log.info(
        "run_finished",
        run_id=c.run_id,
        order=c.external_order_id,
        status=out.run_status,
        state=out.state,
        error=out.error_code,
        invoice=out.invoice_name,
    )


async def execute_run(ctx: SyncContext, run_id: int) -> str:
    """Run ``run_id`` if nobody else is; returns what happened (for the task's log)."""
    claimed = await _claim(ctx, run_id)
    if isinstance(claimed, str):
        return claimed
    upstream = collect_upstream_ids()
    interval = max(ctx.res.settings.run_heartbeat_timeout_seconds / HEARTBEATS_PER_TIMEOUT, 0.5)
    async with _heartbeat(ctx.res.sessionmaker, ctx.res.engine.dialect.name, run_id, interval):
        try:
            outcome = await _work(ctx, claimed)
        except Exception as exc:
            if not isinstance(exc, ConnectorError | MappingMissing | BuyerIncomplete):
                log.exception("run_internal_error", run_id=run_id)
            outcome = _classify(exc)
    await _finish(ctx, claimed, outcome, upstream)
    return str(outcome.run_status)


async def process_events(
    ctx: SyncContext,
    event_ids: Sequence[int],
    concurrency: int,
    *,
    take_more_for: float = 0.0,
    redelivered: bool = True,
) -> None:
    """Inbox events → runs, run here and now, many at once on this process's loop.

    The job's events are ingested together in one unit of work (waiting for any another
    transaction holds), and the runs they produce execute concurrently: a worker process
    keeps many orders in flight while each waits on the marketplace and the ERP, instead
    of one. When the job may be a redelivery (its worker died), the runs of its events still
    active are executed too; a run another worker holds is left to it (``busy``), one
    whose worker died is taken over once its heartbeat is stale.

    For ``take_more_for`` seconds, whenever a third of the ``concurrency`` slots are free,
    the oldest events still waiting in the inbox are taken too, in the same way: however
    the API grouped notifications into jobs, and however few arrive at a time, a process
    keeps its slots full while there is work. The job's message is acknowledged when all
    of it is done; if the process dies first, the runs it took are in the database and
    the sweeper hands them on.
    """
    slots = max(concurrency, 1)
    gate = asyncio.Semaphore(slots)
    started: dict[int, asyncio.Task[None]] = {}

    async def one(run_id: int) -> None:
        async with gate:
            await execute_run(ctx, run_id)

    def start(run_ids: Iterable[int]) -> None:
        for run_id in run_ids:
            if run_id not in started:
                started[run_id] = asyncio.create_task(one(run_id))

    async def take(session: AsyncSession, **which: Any) -> list[int]:
        events = await take_events(session, **which)
        return await ingest_events(session, events, send_jobs=False) if events else []

    try:
        for i in range(0, len(event_ids), INGEST_BATCH):
            ids = event_ids[i : i + INGEST_BATCH]
            start(await in_unit_of_work(ctx.res.sessionmaker, partial(take, ids=ids)))
        if redelivered:
            async with ctx.res.sessionmaker() as session:
                start(
                    await session.scalars(
                        select(SyncRun.id).where(
                            SyncRun.webhook_event_id.in_(list(event_ids)),
                            SyncRun.status.in_(ACTIVE_RUN_STATUSES),
                        )
                    )
                )
    except BaseException:
        # The job fails, but the runs it started finish first: left on a loop nobody
        # drives, they would freeze mid-call. Its events not ingested go back to
        # "received", which the sweeper sends again at its next pass.
        await asyncio.gather(*started.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            async with unit_of_work(ctx.res.sessionmaker) as session:
                await session.execute(
                    update(WebhookEvent)
                    .where(
                        WebhookEvent.id.in_(list(event_ids)),
                        WebhookEvent.status == EventStatus.queued,
                    )
                    .values(status=EventStatus.received)
                )
        raise

    until = time.monotonic() + take_more_for
    refill = max(slots // 3, 1)
    while True:
        pending = [t for t in started.values() if not t.done()]
        free = slots - len(pending)
        if free >= refill and time.monotonic() < until:
            try:
                taken = await in_unit_of_work(ctx.res.sessionmaker, partial(take, limit=free))
            except Exception as exc:  # they stay in the inbox for their own jobs, the sweeper
                log.warning("events_take_failed", error=str(exc))
                until = 0.0
            else:
                start(taken)
            pending = [t for t in started.values() if not t.done()]
        if not pending:
            break
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    results = await asyncio.gather(*started.values(), return_exceptions=True)
    for run_id, result in zip(started, results, strict=True):
        if isinstance(result, BaseException):
            # The run stays claimed; its heartbeat stops and the sweeper takes it over.
            log.error("run_crashed", run_id=run_id, error=repr(result))


__all__ = ["execute_run", "process_events"]
