"""Orders and runs: find them, see their history, retry them (one, or many by filter)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.auth.deps import Operator, Viewer
from conexapi.auth.principal import Principal
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.api import idempotency
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.api.openapi import COMMON_ERRORS
from conexapi.kit.api.pagination import Page, UtcDatetime, paginate, sort_key
from conexapi.kit.api.params import CursorQuery, IdPath, IdQuery, LimitQuery
from conexapi.kit.api.scoping import load_order, load_run
from conexapi.models import OrderState, OrderSync, Pipeline, RunStatus, SyncRun
from conexapi.sync import repository, retries
from conexapi.sync.schemas import (
    BulkRetryIn,
    BulkRetryResult,
    ErpDocument,
    OrderDetail,
    OrderOut,
    RetryResult,
    RunDetail,
    RunOut,
    Skipped,
)

router = APIRouter(prefix="/api/v1", tags=["orders and runs"], responses=COMMON_ERRORS)

OrderSort = Literal["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at"]
RunSort = Literal["id", "-id", "created_at", "-created_at"]
Trigger = Literal["webhook", "reconcile", "manual", "sweeper", "mapping"]


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
    stmt = repository.orders(
        principal,
        merchant_id=merchant_id,
        pipeline_id=pipeline_id,
        states=state,
        external_order_id=external_order_id,
        created_from=created_from,
        created_to=created_to,
    )
    sorting = sort_key(sort, repository.ORDER_SORTS)
    rows, nxt = await paginate(session, stmt, OrderSync.id, sorting, cursor, limit)
    return Page[OrderOut](items=[OrderOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetail,
    summary="An order with the timeline of its runs and its ERP document",
)
async def get_order(order_id: IdPath, principal: Viewer, session: SessionDep) -> OrderDetail:
    order, pipeline = await load_order(session, principal, order_id)
    runs = await repository.runs_of_order(session, order.id)
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
    run = await retries.retry_order(session, order)
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
    states = f.state or list(retries.RETRYABLE_STATES)
    found = await repository.retry_candidates(
        session,
        principal,
        states,
        limit=body.limit + 1,
        merchant_id=f.merchant_id,
        pipeline_id=f.pipeline_id,
        order_ids=f.order_ids,
        external_order_ids=f.external_order_ids,
        error_class=f.error_class,
        created_from=f.created_from,
        created_to=f.created_to,
    )
    done, passed = await retries.retry_matching(session, found[: body.limit], states)
    for one in done:
        record(
            session,
            principal,
            Origin.of(request),
            "order.retry",
            "order",
            one.order.id,
            merchant_id=one.merchant_id,
            details={"run_id": one.run.id, "bulk": True, "idempotency_key": key},
        )
    retried = [
        RetryResult(order=OrderOut.model_validate(one.order), run=RunOut.model_validate(one.run))
        for one in done
    ]
    skipped = [Skipped(order_id=order_id, reason=reason) for order_id, reason in passed]
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
    stmt = repository.runs(
        principal,
        statuses=status_,
        error_class=error_class,
        connection_id=connection_id,
        trigger=trigger,
        order_id=order_id,
        pipeline_id=pipeline_id,
        merchant_id=merchant_id,
        created_from=created_from,
        created_to=created_to,
    )
    sorting = sort_key(sort, repository.RUN_SORTS)
    rows, nxt = await paginate(session, stmt, SyncRun.id, sorting, cursor, limit)
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
    locked = await retries.lock_order(session, order.id)
    assert locked is not None
    new_run = await retries.retry_order(session, locked)
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
