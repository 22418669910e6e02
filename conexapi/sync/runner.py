"""One run: claim it, pull the order, decide, map, push, record.

Upstream calls happen outside database transactions; each step that must survive a crash
is committed before the next call goes out (the claim, the idempotency key: ``claim.py``).
The ERP document is created under a deterministic idempotency key, so a retry after a
timeout, a worker killed mid-push or two runs racing all end with the invoice created first.
Every way a run can end is an :class:`~conexapi.sync.outcome.Outcome`, recorded by
:func:`_finish` in one transaction.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from prometheus_client import Counter, Histogram

from conexapi.db import unit_of_work
from conexapi.kit.context import collect_upstream_ids
from conexapi.models import Connection, ConnectionStatus, OrderState, RunStatus, utcnow
from conexapi.sync.claim import (
    HEARTBEATS_PER_TIMEOUT,
    Claimed,
    NotClaimed,
    claim,
    heartbeat,
    locked_run_and_order,
    worker_name,
)
from conexapi.sync.context import ReauthRequired, SyncContext
from conexapi.sync.days import pipeline_zone
from conexapi.sync.exactly_once import create_once
from conexapi.sync.mapping import MappingMissing
from conexapi.sync.outcome import EXPECTED_ERRORS, ErrorClass, Outcome
from conexapi.sync.policy import decide
from conexapi.sync.service import backoff, request_sync
from connectors.base import MarketplaceConnector
from connectors.errors import AuthError, DataError
from connectors.models import ErpCredentials, Order

log = structlog.get_logger(__name__)

RUNS = Counter("conexapi_sync_runs_total", "Finished sync runs", ["status", "error_class"])
RUN_SECONDS = Histogram(
    "conexapi_sync_run_seconds",
    "Duration of sync runs",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


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
    return Outcome.not_the_order_asked_for(
        f"asked for order {c.external_order_id} (key {c.idempotency_key}), but "
        f"{problem}; nothing was sent to the ERP: check the order in the marketplace"
    )


async def _work(ctx: SyncContext, c: Claimed) -> Outcome:
    marketplace = ctx.integrations.marketplace(c.source.connector)
    for role, conn in (("source", c.source), ("target", c.target)):
        if conn.status != ConnectionStatus.active:
            return Outcome.connection_inactive(role, conn)
    try:
        token = await ctx.access_token(c.source)
    except ReauthRequired as exc:
        return Outcome.reauth_needed("needs_reauth", str(exc))
    try:
        order = await marketplace.fetch_order(token, c.external_order_id)
    except AuthError as exc:
        return Outcome.reauth_needed(exc.code, str(exc), connection_id=c.source.id)
    mismatch = _not_the_order_claimed(marketplace, c, order)
    if mismatch is not None:
        return mismatch
    decided = Outcome.of_decision(decide(order, c.invoiced, c.settings), order)
    if decided is not None:
        return decided

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
    if invoice.total != expected:
        return Outcome.total_mismatch(order, invoice, expected)
    return Outcome.invoiced(order, invoice)


async def _finish(ctx: SyncContext, c: Claimed, out: Outcome, upstream: list[str]) -> None:
    now = utcnow()
    async with unit_of_work(ctx.res.sessionmaker) as s:
        run, order = await locked_run_and_order(s, c.run_id)
        if run.status != RunStatus.running or run.worker != worker_name():
            log.warning("run_taken_over", run_id=run.id)
            return
        # Only a retry has a next attempt (an order that gave up keeps none of the last one).
        order.next_attempt_at = None
        if out.error_class is ErrorClass.budget:
            # A wait for the company's budget is neither an attempt nor a failure: no give-up,
            # no exponential back-off; a little spread so the waiting runs don't all come back
            # at the same instant.
            order.attempts = max(order.attempts - 1, 0)
            wait = (out.retry_after or 0.0) * (1 + random.random() / 10)
            order.next_attempt_at = now + timedelta(seconds=wait)
        elif out.state is OrderState.retry_scheduled:
            settings = c.settings
            age = now - order.created_at
            if age > timedelta(hours=settings.max_retry_hours):
                out = out.gave_up(order.attempts)
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
        if out.invoice is not None:
            order.erp_document_id = out.invoice.id
            order.erp_document_name = out.invoice.name
            order.erp_total = out.invoice.total
            order.erp_stamp_status = out.invoice.stamp_status
        run.status = out.run_status
        run.finished_at = now
        run.duration_ms = int((time.perf_counter() - c.started) * 1000)
        run.error_class = out.error_class
        run.error_code = out.error_code
        run.error_message = out.message
        run.upstream_request_ids = upstream
        if out.reauth_connection_id is not None:
            conn = await s.get(Connection, out.reauth_connection_id)
            if conn is not None and conn.status == ConnectionStatus.active:
                conn.status = ConnectionStatus.needs_reauth
                conn.last_error = (out.message or "")[:1000]
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
        invoice=out.invoice.name if out.invoice is not None else None,
    )


async def execute_run(ctx: SyncContext, run_id: int) -> RunStatus | NotClaimed:
    """Run ``run_id`` if nobody else is; returns how it ended, or why it was not claimed
    (for the task's log; ``busy`` is worth trying again)."""
    claimed = await claim(ctx, run_id)
    if isinstance(claimed, NotClaimed):
        return claimed
    upstream = collect_upstream_ids()
    interval = max(ctx.res.settings.run_heartbeat_timeout_seconds / HEARTBEATS_PER_TIMEOUT, 0.5)
    async with heartbeat(ctx.res.sessionmaker, ctx.res.engine.dialect.name, run_id, interval):
        try:
            outcome = await _work(ctx, claimed)
        except Exception as exc:
            if not isinstance(exc, EXPECTED_ERRORS):
                log.exception("run_internal_error", run_id=run_id)
            outcome = Outcome.of_error(exc)
    await _finish(ctx, claimed, outcome, upstream)
    return outcome.run_status


__all__ = ["execute_run"]
