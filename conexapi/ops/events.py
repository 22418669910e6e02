"""The webhook inbox as ops see it (filter, inspect, replay) and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.auth.deps import Operator, Viewer
from conexapi.auth.principal import Principal
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.models import AuditEntry, EventStatus, WebhookEvent
from conexapi.ops import idempotency, service
from conexapi.ops.audit import Origin, record
from conexapi.ops.openapi import COMMON_ERRORS
from conexapi.ops.pagination import MAX_LIMIT, Page, UtcDatetime, paginate, sort_key
from conexapi.ops.schemas import MAX_ID, AuditOut, BulkReplayResult, EventDetail, EventOut, IdPath
from conexapi.ops.scoping import event_clause, event_merchants, load_event, merchant_clause

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("/webhook-events", response_model=Page[EventOut], tags=["webhook events"])
async def list_events(
    principal: Viewer,
    session: SessionDep,
    status_: Annotated[list[EventStatus] | None, Query(alias="status")] = None,
    topic: Annotated[str | None, Query(max_length=64)] = None,
    connector: Annotated[str | None, Query(max_length=32)] = None,
    order_id: Annotated[str | None, Query(max_length=64)] = None,
    merchant_id: IdQuery = None,
    received_from: UtcDatetime | None = None,
    received_to: UtcDatetime | None = None,
    sort: Literal["id", "-id", "received_at", "-received_at"] = "-id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[EventOut]:
    stmt = select(WebhookEvent).where(event_clause(principal, merchant_id))
    if status_:
        stmt = stmt.where(WebhookEvent.status.in_([s.value for s in status_]))
    if topic is not None:
        stmt = stmt.where(WebhookEvent.topic == topic)
    if connector is not None:
        stmt = stmt.where(WebhookEvent.connector == connector)
    if order_id is not None:
        stmt = stmt.where(WebhookEvent.order_id == order_id)
    if received_from is not None:
        stmt = stmt.where(WebhookEvent.received_at >= received_from)
    if received_to is not None:
        stmt = stmt.where(WebhookEvent.received_at < received_to)
    sorts = {"id": WebhookEvent.id, "received_at": WebhookEvent.received_at}
    rows, nxt = await paginate(session, stmt, WebhookEvent.id, sort_key(sort, sorts), cursor, limit)
    return Page[EventOut](items=[EventOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.get("/webhook-events/{event_id}", response_model=EventDetail, tags=["webhook events"])
async def get_event(event_id: IdPath, principal: Viewer, session: SessionDep) -> EventDetail:
    event = await load_event(session, principal, event_id)
    merchants = [m for m in await event_merchants(session, event) if principal.sees(m)]
    return EventDetail(
        **EventOut.model_validate(event).model_dump(),
        payload=event.payload,
        merchant_ids=merchants,
    )


def _audit_replay(
    session: SessionDep, principal: Any, request: Request, event_id: int, merchants: list[int]
) -> None:
    record(
        session,
        principal,
        Origin.of(request),
        "webhook_event.replay",
        "webhook_event",
        event_id,
        merchant_id=merchants[0] if len(merchants) == 1 else None,
        details={"merchant_ids": merchants} if len(merchants) > 1 else {},
    )


@router.post(
    "/webhook-events/{event_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventOut,
    tags=["webhook events"],
    summary="Process the event again, as if it had just arrived",
)
async def replay_event(
    event_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> EventOut:
    event = await load_event(session, principal, event_id)
    replayed = await service.replay_event(session, event.id)
    assert replayed is not None
    merchants = [m for m in await event_merchants(session, event) if principal.sees(m)]
    _audit_replay(session, principal, request, event.id, merchants)
    return EventOut.model_validate(replayed)


class EventFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000
    )
    status: list[EventStatus] | None = Field(default=None, max_length=10)
    topic: str | None = Field(default=None, max_length=64)
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    received_from: UtcDatetime | None = None
    received_to: UtcDatetime | None = None


class BulkReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: EventFilter
    limit: int = Field(default=500, ge=1, le=1000)


@router.post(
    "/webhook-events/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkReplayResult,
    tags=["webhook events"],
    summary="Replay every event matching a filter; safe to repeat with the same key",
)
async def bulk_replay(
    body: BulkReplayIn,
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
        lambda session: _replay_matching(session, body, principal, key, request),
    )


async def _replay_matching(
    session: AsyncSession,
    body: BulkReplayIn,
    principal: Principal,
    key: str,
    request: Request,
) -> BulkReplayResult:
    f = body.filter
    stmt = select(WebhookEvent.id).where(event_clause(principal, f.merchant_id))
    if f.event_ids is not None:
        stmt = stmt.where(WebhookEvent.id.in_(f.event_ids))
    if f.status:
        stmt = stmt.where(WebhookEvent.status.in_([s.value for s in f.status]))
    if f.topic is not None:
        stmt = stmt.where(WebhookEvent.topic == f.topic)
    if f.received_from is not None:
        stmt = stmt.where(WebhookEvent.received_at >= f.received_from)
    if f.received_to is not None:
        stmt = stmt.where(WebhookEvent.received_at < f.received_to)
    ids = list(await session.scalars(stmt.order_by(WebhookEvent.id).limit(body.limit + 1)))
    replayed = []
    for event_id in ids[: body.limit]:
        event = await service.replay_event(session, event_id)
        if event is None:
            continue
        replayed.append(event_id)
        merchants = [m for m in await event_merchants(session, event) if principal.sees(m)]
        _audit_replay(session, principal, request, event_id, merchants)
    result = BulkReplayResult(replayed=replayed, truncated=len(ids) > body.limit)
    return result


# --- audit log ------------------------------------------------------------------------------


@router.get(
    "/audit-log",
    response_model=Page[AuditOut],
    tags=["audit log"],
    summary="Who changed what, when, from where (admins also see entries of no merchant)",
)
async def list_audit(
    principal: Viewer,
    session: SessionDep,
    merchant_id: IdQuery = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor_type: Literal["user", "api_key", "anonymous"] | None = None,
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    occurred_from: UtcDatetime | None = None,
    occurred_to: UtcDatetime | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AuditOut]:
    stmt = select(AuditEntry).where(merchant_clause(principal, AuditEntry.merchant_id))
    if merchant_id is not None:
        stmt = stmt.where(AuditEntry.merchant_id == merchant_id)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if actor_type is not None:
        stmt = stmt.where(AuditEntry.actor_type == actor_type)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if target_type is not None:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if occurred_from is not None:
        stmt = stmt.where(AuditEntry.occurred_at >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(AuditEntry.occurred_at < occurred_to)
    rows, nxt = await paginate(
        session, stmt, AuditEntry.id, sort_key("-id", {"id": AuditEntry.id}), cursor, limit
    )
    return Page[AuditOut](items=[AuditOut.model_validate(r) for r in rows], next_cursor=nxt)
