"""Orders and runs, read-only, plus a safe retry. The full ops API builds on these."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from conexapi.deps import SessionDep
from conexapi.kit.errors import Conflict, NotFound
from conexapi.models import OrderState, OrderSync, SyncRun
from conexapi.sync.service import request_sync

router = APIRouter(prefix="/api/v1", tags=["sync"])


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    order_sync_id: int
    trigger: str
    status: str
    attempt: int
    correlation_id: str | None
    webhook_event_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error_class: str | None
    error_code: str | None
    error_message: str | None
    upstream_request_ids: list[str]


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    pipeline_id: int
    external_order_id: str
    state: str
    order_status: str | None
    order_total: Decimal | None
    erp_document_id: str | None
    erp_document_name: str | None
    erp_total: Decimal | None
    erp_stamp_status: str | None
    idempotency_key: str | None
    first_seen_via: str
    attempts: int
    next_attempt_at: datetime | None
    last_error_class: str | None
    last_error_code: str | None
    last_error_message: str | None
    created_at: datetime
    updated_at: datetime


class OrderDetail(OrderOut):
    runs: list[RunOut]


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: int | None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: int | None


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    session: SessionDep,
    pipeline_id: int | None = None,
    state: OrderState | None = None,
    external_order_id: str | None = None,
    cursor: int = 0,
    limit: int = Query(50, ge=1, le=500),
) -> OrderPage:
    stmt = select(OrderSync).where(OrderSync.id > cursor).order_by(OrderSync.id).limit(limit + 1)
    if pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == pipeline_id)
    if state is not None:
        stmt = stmt.where(OrderSync.state == state)
    if external_order_id is not None:
        stmt = stmt.where(OrderSync.external_order_id == external_order_id)
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return OrderPage(
        items=[OrderOut.model_validate(r) for r in rows],
        next_cursor=rows[-1].id if more else None,
    )


@router.get("/orders/{order_id}", response_model=OrderDetail)
async def get_order(order_id: int, session: SessionDep) -> OrderDetail:
    order = await session.get(OrderSync, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found.")
    runs = await session.scalars(
        select(SyncRun).where(SyncRun.order_sync_id == order.id).order_by(SyncRun.id)
    )
    return OrderDetail(
        **OrderOut.model_validate(order).model_dump(),
        runs=[RunOut.model_validate(r) for r in runs],
    )


@router.post(
    "/orders/{order_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=OrderOut
)
async def retry_order(order_id: int, session: SessionDep) -> OrderOut:
    """Run the order again. An invoiced order is refused: it can never get a second invoice."""
    order = await session.get(OrderSync, order_id, with_for_update=True)
    if order is None:
        raise NotFound(f"order {order_id} not found.")
    if order.state == OrderState.invoiced:
        raise Conflict("the order is already invoiced.", code="already_invoiced")
    await request_sync(session, order, "manual")
    return OrderOut.model_validate(order)


@router.get("/runs", response_model=RunPage)
async def list_runs(
    session: SessionDep,
    status_: str | None = Query(None, alias="status"),
    order_id: int | None = None,
    error_class: str | None = None,
    trigger: str | None = None,
    cursor: int = 0,
    limit: int = Query(50, ge=1, le=500),
) -> RunPage:
    stmt = select(SyncRun).where(SyncRun.id > cursor).order_by(SyncRun.id).limit(limit + 1)
    if status_:
        stmt = stmt.where(SyncRun.status == status_)
    if order_id is not None:
        stmt = stmt.where(SyncRun.order_sync_id == order_id)
    if error_class:
        stmt = stmt.where(SyncRun.error_class == error_class)
    if trigger:
        stmt = stmt.where(SyncRun.trigger == trigger)
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return RunPage(
        items=[RunOut.model_validate(r) for r in rows], next_cursor=rows[-1].id if more else None
    )


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: int, session: SessionDep) -> RunOut:
    run = await session.get(SyncRun, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found.")
    return RunOut.model_validate(run)
