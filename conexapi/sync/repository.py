"""Queries behind the orders and runs endpoints, always within the caller's scope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import orders_query, runs_query
from conexapi.models import OrderState, OrderSync, Pipeline, RunStatus, SyncRun

ORDER_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": OrderSync.id,
    "created_at": OrderSync.created_at,
    "updated_at": OrderSync.updated_at,
}
RUN_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": SyncRun.id,
    "created_at": SyncRun.created_at,
}


def orders(
    principal: Principal,
    *,
    merchant_id: int | None = None,
    pipeline_id: int | None = None,
    states: Sequence[OrderState] | None = None,
    external_order_id: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> Select[OrderSync]:
    stmt = orders_query(principal)
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == pipeline_id)
    if states:
        stmt = stmt.where(OrderSync.state.in_([s.value for s in states]))
    if external_order_id is not None:
        stmt = stmt.where(OrderSync.external_order_id == external_order_id)
    if created_from is not None:
        stmt = stmt.where(OrderSync.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(OrderSync.created_at < created_to)
    return stmt


async def retry_candidates(
    session: AsyncSession,
    principal: Principal,
    states: Sequence[OrderState],
    *,
    limit: int,
    merchant_id: int | None = None,
    pipeline_id: int | None = None,
    order_ids: Sequence[int] | None = None,
    external_order_ids: Sequence[str] | None = None,
    error_class: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> list[tuple[int, int]]:
    """(order id, merchant id) of up to ``limit`` orders a bulk retry matches, by id."""
    stmt = orders_query(principal).with_only_columns(OrderSync.id, Pipeline.merchant_id)
    stmt = stmt.where(OrderSync.state.in_([s.value for s in states]))
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == pipeline_id)
    if order_ids is not None:
        stmt = stmt.where(OrderSync.id.in_(order_ids))
    if external_order_ids is not None:
        stmt = stmt.where(OrderSync.external_order_id.in_(external_order_ids))
    if error_class is not None:
        stmt = stmt.where(OrderSync.last_error_class == error_class)
    if created_from is not None:
        stmt = stmt.where(OrderSync.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(OrderSync.created_at < created_to)
    found = await session.execute(stmt.order_by(OrderSync.id).limit(limit))
    return [(order_id, merchant) for order_id, merchant in found.all()]


async def runs_of_order(session: AsyncSession, order_id: int) -> Sequence[SyncRun]:
    """Every run of the order, oldest first."""
    found = await session.scalars(
        select(SyncRun).where(SyncRun.order_sync_id == order_id).order_by(SyncRun.id)
    )
    return found.all()


def runs(
    principal: Principal,
    *,
    statuses: Sequence[RunStatus] | None = None,
    error_class: str | None = None,
    connection_id: int | None = None,
    trigger: str | None = None,
    order_id: int | None = None,
    pipeline_id: int | None = None,
    merchant_id: int | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> Select[SyncRun]:
    stmt = runs_query(principal)
    if statuses:
        stmt = stmt.where(SyncRun.status.in_([s.value for s in statuses]))
    if error_class is not None:
        stmt = stmt.where(SyncRun.error_class == error_class)
    if connection_id is not None:
        stmt = stmt.where(
            (Pipeline.source_connection_id == connection_id)
            | (Pipeline.target_connection_id == connection_id)
        )
    if trigger is not None:
        stmt = stmt.where(SyncRun.trigger == trigger)
    if order_id is not None:
        stmt = stmt.where(SyncRun.order_sync_id == order_id)
    if pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == pipeline_id)
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if created_from is not None:
        stmt = stmt.where(SyncRun.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(SyncRun.created_at < created_to)
    return stmt
