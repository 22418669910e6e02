"""Orders and runs: find them, see their history, retry them (one, or many by filter)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.auth.deps import Operator, Viewer
from conexapi.auth.principal import Principal
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.models import OrderState, OrderSync, Pipeline, RunStatus, SyncRun
from conexapi.ops import idempotency, service
from conexapi.ops.audit import Origin, record
from conexapi.ops.openapi import COMMON_ERRORS
from conexapi.ops.pagination import MAX_LIMIT, Page, UtcDatetime, paginate, sort_key
from conexapi.ops.schemas import (
    MAX_ID,
    BulkRetryResult,
    ErpDocument,
    IdPath,
    OrderDetail,
    OrderOut,
    RetryResult,
    RunDetail,
    RunOut,
    Skipped,
)
from conexapi.ops.scoping import load_order, load_run, orders_query, runs_query

router = APIRouter(prefix="/api/v1", tags=["orders and runs"], responses=COMMON_ERRORS)

IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]
OrderSort = Literal["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at"]
RunSort = Literal["id", "-id", "created_at", "-created_at"]
Trigger = Literal["webhook", "reconcile", "manual", "sweeper", "mapping"]

_ORDER_SORTS = {
    "id": OrderSync.id,
    "created_at": OrderSync.created_at,
    "updated_at": OrderSync.updated_at,
}
_RUN_SORTS = {"id": SyncRun.id, "created_at": SyncRun.created_at}


# --- orders -------------------------------------------------------------------------------


@router.get("/orders", response_model=Page[OrderOut], summary="Orders the caller may see")
async def list_orders(
    principal: Viewer,
    session: SessionDep,
    merchant_id: IdQuery = None,
    pipeline_id: IdQuery = None,
    state: Annotated[list[OrderState] | None, Query(description="One or more states.")] = None,
    external_order_id: Annotated[str | None, Query(max_length=64)] = None,
    created_from: UtcDatetime | None = None,
    created_to: UtcDatetime | None = None,
    sort: OrderSort = "-id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[OrderOut]:
    stmt = orders_query(principal)
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == pipeline_id)
    if state:
        stmt = stmt.where(OrderSync.state.in_([s.value for s in state]))
    if external_order_id is not None:
        stmt = stmt.where(OrderSync.external_order_id == external_order_id)
    if created_from is not None:
        stmt = stmt.where(OrderSync.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(OrderSync.created_at < created_to)
    rows, nxt = await paginate(
        session, stmt, OrderSync.id, sort_key(sort, _ORDER_SORTS), cursor, limit
    )
    return Page[OrderOut](items=[OrderOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetail,
    summary="An order with the timeline of its runs and its ERP document",
)
async def get_order(order_id: IdPath, principal: Viewer, session: SessionDep) -> OrderDetail:
    order, pipeline = await load_order(session, principal, order_id)
    runs = await session.scalars(
        select(SyncRun).where(SyncRun.order_sync_id == order.id).order_by(SyncRun.id)
    )
    document = (
        ErpDocument(
            id=order.erp_document_id,
            name=order.erp_document_name,
            total=order.erp_total,
            stamp_status=order.erp_stamp_status,
        )
        if order.erp_document_id
        else None
    )
    return OrderDetail(
        **OrderOut.model_validate(order).model_dump(),
        merchant_id=pipeline.merchant_id,
        erp_document=document,
        runs=[RunOut.model_validate(r) for r in runs],
    )


@router.post(
    "/orders/{order_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryResult,
    summary="Run the order again (409 already_invoiced / run_active when it cannot be)",
)
async def retry_order(
    order_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> RetryResult:
    order, pipeline = await load_order(session, principal, order_id, lock=True)
    run = await service.retry_order(session, order)
    record(
        session,
        principal,
        Origin.of(request),
        "order.retry",
        "order",
        order.id,
        merchant_id=pipeline.merchant_id,
        details={"run_id": run.id},
    )
    return RetryResult(order=OrderOut.model_validate(order), run=RunOut.model_validate(run))


class OrderFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    pipeline_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    state: list[OrderState] | None = Field(
        default=None,
        max_length=20,
        description="Default: failed, needs_attention, needs_reauth, needs_mapping, "
        "retry_scheduled. Invoiced orders are always skipped.",
    )
    order_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000
    )
    external_order_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=1000
    )
    error_class: str | None = Field(default=None, max_length=32)
    created_from: UtcDatetime | None = None
    created_to: UtcDatetime | None = None


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: OrderFilter = Field(default_factory=OrderFilter)
    limit: int = Field(default=500, ge=1, le=1000)


@router.post(
    "/orders/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkRetryResult,
    summary="Retry every order matching a filter; safe to repeat with the same key",
    responses={202: {"headers": {idempotency.REPLAYED_HEADER: {"schema": {"type": "string"}}}}},
)
async def bulk_retry(
    body: BulkRetryIn,
    key: idempotency.IdempotencyKey,
    principal: Operator,
    resources: ResourcesDep,
    request: Request,
) -> Any:
    return await idempotency.accepted_once(
        resources,
        principal,
        key,
        request,
        body,
        lambda session: _retry_matching(session, body, principal, key, request),
    )


async def _retry_matching(
    session: AsyncSession,
    body: BulkRetryIn,
    principal: Principal,
    key: str,
    request: Request,
) -> BulkRetryResult:
    f = body.filter
    stmt = orders_query(principal).with_only_columns(OrderSync.id, Pipeline.merchant_id)
    states = f.state or list(service.RETRYABLE_STATES)
    stmt = stmt.where(OrderSync.state.in_([s.value for s in states]))
    if f.merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == f.merchant_id)
    if f.pipeline_id is not None:
        stmt = stmt.where(OrderSync.pipeline_id == f.pipeline_id)
    if f.order_ids is not None:
        stmt = stmt.where(OrderSync.id.in_(f.order_ids))
    if f.external_order_ids is not None:
        stmt = stmt.where(OrderSync.external_order_id.in_(f.external_order_ids))
    if f.error_class is not None:
        stmt = stmt.where(OrderSync.last_error_class == f.error_class)
    if f.created_from is not None:
        stmt = stmt.where(OrderSync.created_at >= f.created_from)
    if f.created_to is not None:
        stmt = stmt.where(OrderSync.created_at < f.created_to)
    found = (await session.execute(stmt.order_by(OrderSync.id).limit(body.limit + 1))).all()
    retried: list[RetryResult] = []
    skipped: list[Skipped] = []
    for order_id, merchant_id in found[: body.limit]:
        order = await service.lock_order(session, order_id)
        if order is None:
            continue
        reason = await service.why_not_retry(session, order)
        if reason is None and order.state not in [s.value for s in states]:
            reason = "state_changed"
        if reason is not None:
            skipped.append(Skipped(order_id=order_id, reason=reason))
            continue
        run = await service.retry_order(session, order)
        retried.append(
            RetryResult(order=OrderOut.model_validate(order), run=RunOut.model_validate(run))
        )
        record(
            session,
            principal,
            Origin.of(request),
            "order.retry",
            "order",
            order.id,
            merchant_id=merchant_id,
            details={"run_id": run.id, "bulk": True, "idempotency_key": key},
        )
    result = BulkRetryResult(retried=retried, skipped=skipped, truncated=len(found) > body.limit)
    return result


# --- runs ---------------------------------------------------------------------------------


@router.get("/runs", response_model=Page[RunOut], summary="Sync runs the caller may see")
async def list_runs(
    principal: Viewer,
    session: SessionDep,
    status_: Annotated[list[RunStatus] | None, Query(alias="status")] = None,
    error_class: Annotated[str | None, Query(max_length=32)] = None,
    connection_id: IdQuery = None,
    trigger: Trigger | None = None,
    order_id: IdQuery = None,
    pipeline_id: IdQuery = None,
    merchant_id: IdQuery = None,
    created_from: UtcDatetime | None = None,
    created_to: UtcDatetime | None = None,
    sort: RunSort = "-id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[RunOut]:
    stmt = runs_query(principal)
    if status_:
        stmt = stmt.where(SyncRun.status.in_([s.value for s in status_]))
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
    rows, nxt = await paginate(session, stmt, SyncRun.id, sort_key(sort, _RUN_SORTS), cursor, limit)
    return Page[RunOut](items=[RunOut.model_validate(r) for r in rows], next_cursor=nxt)


def _run_detail(run: SyncRun, order: OrderSync, pipeline: Pipeline) -> RunDetail:
    return RunDetail(
        **RunOut.model_validate(run).model_dump(),
        heartbeat_at=run.heartbeat_at,
        worker=run.worker,
        pipeline_id=pipeline.id,
        merchant_id=pipeline.merchant_id,
        external_order_id=order.external_order_id,
        order_state=OrderState(order.state),
    )


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    summary="A run: error, attempt, upstream request ids, correlation id",
)
async def get_run(run_id: IdPath, principal: Viewer, session: SessionDep) -> RunDetail:
    run, order, pipeline = await load_run(session, principal, run_id)
    return _run_detail(run, order, pipeline)


@router.post(
    "/runs/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryResult,
    summary="Retry the order of a run (409 already_invoiced / run_active when it cannot be)",
)
async def retry_run(
    run_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> RetryResult:
    run, order, pipeline = await load_run(session, principal, run_id)
    locked = await service.lock_order(session, order.id)
    assert locked is not None
    new_run = await service.retry_order(session, locked)
    record(
        session,
        principal,
        Origin.of(request),
        "run.retry",
        "run",
        run.id,
        merchant_id=pipeline.merchant_id,
        details={"order_id": order.id, "run_id": new_run.id},
    )
    return RetryResult(order=OrderOut.model_validate(locked), run=RunOut.model_validate(new_run))
