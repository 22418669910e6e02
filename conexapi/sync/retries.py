"""Ops actions on orders: retry one, retry what a filter matches, resume what a pause held.

Runs are never written here: every retry goes through ``request_sync``, which keeps one
active run per order, and an order that has an invoice is never retried (the runner would
not invoice it twice either: the ERP call carries the order's idempotency key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.context import get_request_id
from conexapi.kit.errors import Conflict
from conexapi.models import OrderState, OrderSync, RunStatus, SyncRun
from conexapi.sync.service import active_run, request_sync

MANUAL = "manual"

#: What a bulk retry picks when no state is named: orders stuck for a reason a person fixes.
RETRYABLE_STATES = (
    OrderState.failed,
    OrderState.needs_attention,
    OrderState.needs_reauth,
    OrderState.needs_mapping,
    OrderState.retry_scheduled,
)


def has_invoice(order: OrderSync) -> bool:
    return order.erp_document_id is not None or order.state in (
        OrderState.invoiced,
        OrderState.cancelled_after_invoice,
    )


async def why_not_retry(session: AsyncSession, order: OrderSync) -> str | None:
    """None when the order (locked by the caller) may be retried, else the reason."""
    if has_invoice(order):
        return "already_invoiced"
    if await active_run(session, order.id) is not None:
        return "run_active"
    return None


async def retry_order(session: AsyncSession, order: OrderSync) -> SyncRun:
    """Queue a manual run for ``order`` (locked by the caller), or refuse with 409."""
    reason = await why_not_retry(session, order)
    if reason == "already_invoiced":
        raise Conflict(
            f"order {order.id} is already invoiced ({order.erp_document_name or 'ERP'}); "
            "it is never invoiced twice.",
            code="already_invoiced",
        )
    if reason == "run_active":
        raise Conflict(f"order {order.id} has a run queued or running.", code="run_active")
    run = await request_sync(session, order, MANUAL, correlation_id=get_request_id())
    if run is None:  # a run was queued between our check and our write
        raise Conflict(f"order {order.id} has a run queued or running.", code="run_active")
    await session.flush()
    return run


async def lock_order(session: AsyncSession, order_id: int) -> OrderSync | None:
    return await session.get(OrderSync, order_id, with_for_update=True, populate_existing=True)


async def resume_waiting_orders(session: AsyncSession, pipeline_ids: Sequence[int]) -> int:
    """Start the orders a pause left waiting (their last run ended ``waiting``)."""
    if not pipeline_ids:
        return 0
    latest = (
        select(func.max(SyncRun.id))
        .where(SyncRun.order_sync_id == OrderSync.id)
        .correlate(OrderSync)
        .scalar_subquery()
    )
    waiting = await session.scalars(
        select(OrderSync)
        .join(SyncRun, SyncRun.id == latest)
        .where(
            OrderSync.pipeline_id.in_(list(pipeline_ids)),
            OrderSync.state.in_((OrderState.pending, OrderState.in_progress)),
            SyncRun.status == RunStatus.waiting,
        )
        .order_by(OrderSync.id)
        .limit(1000)
        .with_for_update()
    )
    started = 0
    for order in waiting.all():
        if has_invoice(order):
            continue
        if await request_sync(session, order, MANUAL, correlation_id=get_request_id()):
            started += 1
    return started


@dataclass(frozen=True)
class Retried:
    order: OrderSync
    run: SyncRun
    merchant_id: int


async def retry_matching(
    session: AsyncSession, candidates: Sequence[tuple[int, int]], states: Sequence[OrderState]
) -> tuple[list[Retried], list[tuple[int, str]]]:
    """Retry each (order id, merchant id) a bulk filter found, each under its row lock;
    the ones that cannot be retried (any more) come back with the reason."""
    retried: list[Retried] = []
    skipped: list[tuple[int, str]] = []
    wanted = [s.value for s in states]
    for order_id, merchant_id in candidates:
        order = await lock_order(session, order_id)
        if order is None:
            continue
        reason = await why_not_retry(session, order)
        if reason is None and order.state not in wanted:
            reason = "state_changed"
        if reason is not None:
            skipped.append((order_id, reason))
            continue
        retried.append(Retried(order, await retry_order(session, order), merchant_id))
    return retried, skipped
