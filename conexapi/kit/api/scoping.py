"""Tenant isolation in one place: what a caller may see, and loading by id within it.

Another merchant's object is answered exactly like a missing one (404), so ids reveal
nothing. Lists always carry the caller's merchant filter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.errors import NotFound
from conexapi.models import Connection, OrderSync, Pipeline, SyncRun, WebhookEvent


def merchant_clause(
    principal: Principal, column: InstrumentedAttribute[Any]
) -> ColumnElement[bool]:
    if principal.merchant_ids is None:
        return true()
    if not principal.merchant_ids:
        return false()
    return column.in_(sorted(principal.merchant_ids))


def event_clause(principal: Principal, merchant_id: int | None = None) -> ColumnElement[bool]:
    """Events belong to the merchants whose connection is the account they are about."""
    if principal.merchant_ids is None and merchant_id is None:
        return true()
    owner = select(Connection.id).where(
        Connection.connector == WebhookEvent.connector,
        Connection.external_account_id == WebhookEvent.external_account_id,
        merchant_clause(principal, Connection.merchant_id),
    )
    if merchant_id is not None:
        owner = owner.where(Connection.merchant_id == merchant_id)
    return exists(owner)


def orders_query(principal: Principal) -> Select[OrderSync]:
    return (
        select(OrderSync)
        .join(Pipeline, Pipeline.id == OrderSync.pipeline_id)
        .where(merchant_clause(principal, Pipeline.merchant_id))
    )


def runs_query(principal: Principal) -> Select[SyncRun]:
    return (
        select(SyncRun)
        .join(OrderSync, OrderSync.id == SyncRun.order_sync_id)
        .join(Pipeline, Pipeline.id == OrderSync.pipeline_id)
        .where(merchant_clause(principal, Pipeline.merchant_id))
    )


async def load_pipeline(session: AsyncSession, principal: Principal, pipeline_id: int) -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or not principal.sees(pipeline.merchant_id):
        raise NotFound(f"pipeline {pipeline_id} not found.")
    return pipeline


async def load_connection(
    session: AsyncSession, principal: Principal, connection_id: int
) -> Connection:
    conn = await session.get(Connection, connection_id)
    if conn is None or not principal.sees(conn.merchant_id):
        raise NotFound(f"connection {connection_id} not found.")
    return conn


async def load_order(
    session: AsyncSession, principal: Principal, order_id: int, *, lock: bool = False
) -> tuple[OrderSync, Pipeline]:
    row = (
        await session.execute(
            select(OrderSync, Pipeline)
            .join(Pipeline, Pipeline.id == OrderSync.pipeline_id)
            .where(OrderSync.id == order_id, merchant_clause(principal, Pipeline.merchant_id))
        )
    ).first()
    if row is None:
        raise NotFound(f"order {order_id} not found.")
    order, pipeline = row
    if lock:
        locked = await session.get(
            OrderSync, order_id, with_for_update=True, populate_existing=True
        )
        if locked is None:
            raise NotFound(f"order {order_id} not found.")
        order = locked
    return order, pipeline


async def load_run(
    session: AsyncSession, principal: Principal, run_id: int
) -> tuple[SyncRun, OrderSync, Pipeline]:
    row = (
        await session.execute(
            select(SyncRun, OrderSync, Pipeline)
            .join(OrderSync, OrderSync.id == SyncRun.order_sync_id)
            .join(Pipeline, Pipeline.id == OrderSync.pipeline_id)
            .where(SyncRun.id == run_id, merchant_clause(principal, Pipeline.merchant_id))
        )
    ).first()
    if row is None:
        raise NotFound(f"run {run_id} not found.")
    run, order, pipeline = row
    return run, order, pipeline


async def load_event(session: AsyncSession, principal: Principal, event_id: int) -> WebhookEvent:
    event = await session.scalar(
        select(WebhookEvent).where(WebhookEvent.id == event_id, event_clause(principal))
    )
    if event is None:
        raise NotFound(f"webhook event {event_id} not found.")
    return event


async def event_merchants(session: AsyncSession, event: WebhookEvent) -> list[int]:
    return list(
        await session.scalars(
            select(Connection.merchant_id).where(
                and_(
                    Connection.connector == event.connector,
                    Connection.external_account_id == event.external_account_id,
                )
            )
        )
    )
