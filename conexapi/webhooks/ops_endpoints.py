"""The webhook inbox as ops see it: filter, inspect, replay (one, or many by filter)."""

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
from conexapi.kit.api.scoping import event_merchants, load_event
from conexapi.models import EventStatus, WebhookEvent
from conexapi.webhooks import repository, service
from conexapi.webhooks.schemas import BulkReplayIn, BulkReplayResult, EventDetail, EventOut

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)


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
    stmt = repository.events(
        principal,
        merchant_id=merchant_id,
        statuses=status_,
        topic=topic,
        connector=connector,
        order_id=order_id,
        received_from=received_from,
        received_to=received_to,
    )
    sorting = sort_key(sort, repository.EVENT_SORTS)
    rows, nxt = await paginate(session, stmt, WebhookEvent.id, sorting, cursor, limit)
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
    ids = await repository.event_ids(
        session,
        principal,
        limit=body.limit + 1,
        merchant_id=f.merchant_id,
        event_ids=f.event_ids,
        statuses=f.status,
        topic=f.topic,
        received_from=f.received_from,
        received_to=f.received_to,
    )
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
