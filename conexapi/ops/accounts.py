"""Merchants and their connections: list, inspect, set budgets, pause, resume, disconnect."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from conexapi.auth.deps import Admin, Operator, Viewer
from conexapi.connections import service as connections
from conexapi.connections.errors import InvalidRateSettings
from conexapi.connections.schemas import ConnectionUpdate
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.errors import BadRequest, Conflict, NotFound
from conexapi.models import Connection, ConnectionStatus, Merchant, Pipeline
from conexapi.ops import service
from conexapi.ops.audit import Origin, record
from conexapi.ops.openapi import COMMON_ERRORS
from conexapi.ops.pagination import MAX_LIMIT, Page, paginate, sort_key
from conexapi.ops.schemas import (
    MAX_ID,
    ConnectionView,
    IdPath,
    MerchantCreate,
    MerchantOut,
    MerchantUpdate,
)
from conexapi.ops.scoping import load_connection, merchant_clause

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]


# --- merchants ----------------------------------------------------------------------------


@router.get("/merchants", response_model=Page[MerchantOut], tags=["merchants"])
async def list_merchants(
    principal: Viewer,
    session: SessionDep,
    slug: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[MerchantOut]:
    stmt = select(Merchant).where(merchant_clause(principal, Merchant.id))
    if slug is not None:
        stmt = stmt.where(Merchant.slug == slug)
    sorts = {"id": Merchant.id, "created_at": Merchant.created_at}
    rows, nxt = await paginate(session, stmt, Merchant.id, sort_key(sort, sorts), cursor, limit)
    return Page[MerchantOut](items=[MerchantOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.post(
    "/merchants",
    status_code=status.HTTP_201_CREATED,
    response_model=MerchantOut,
    tags=["merchants"],
    summary="Create a merchant (admins)",
)
async def create_merchant(
    data: MerchantCreate, principal: Admin, session: SessionDep, request: Request
) -> Merchant:
    merchant = Merchant(name=data.name, slug=data.slug)
    try:
        async with session.begin_nested():
            session.add(merchant)
    except IntegrityError:
        raise Conflict(f"a merchant with slug {data.slug!r} exists.", code="slug_taken") from None
    record(
        session,
        principal,
        Origin.of(request),
        "merchant.create",
        "merchant",
        merchant.id,
        merchant_id=merchant.id,
        details={"slug": data.slug},
    )
    return merchant


async def _merchant(session: SessionDep, principal: Viewer, merchant_id: int) -> Merchant:
    merchant = await session.get(Merchant, merchant_id) if principal.sees(merchant_id) else None
    if merchant is None:
        raise NotFound(f"merchant {merchant_id} not found.")
    return merchant


@router.get("/merchants/{merchant_id}", response_model=MerchantOut, tags=["merchants"])
async def get_merchant(merchant_id: IdPath, principal: Viewer, session: SessionDep) -> Merchant:
    return await _merchant(session, principal, merchant_id)


@router.patch(
    "/merchants/{merchant_id}",
    response_model=MerchantOut,
    tags=["merchants"],
    summary="Rename a merchant (admins)",
)
async def update_merchant(
    merchant_id: IdPath,
    data: MerchantUpdate,
    principal: Admin,
    session: SessionDep,
    request: Request,
) -> Merchant:
    merchant = await _merchant(session, principal, merchant_id)
    before = merchant.name
    merchant.name = data.name
    await session.flush()
    record(
        session,
        principal,
        Origin.of(request),
        "merchant.update",
        "merchant",
        merchant.id,
        merchant_id=merchant.id,
        details={"name": {"from": before, "to": data.name}},
    )
    return merchant


# --- connections --------------------------------------------------------------------------


@router.get(
    "/connections",
    response_model=Page[ConnectionView],
    tags=["connections"],
    summary="Connections: status, last error, token expiry",
)
async def list_connections(
    principal: Viewer,
    session: SessionDep,
    merchant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    connector: Annotated[str | None, Query(max_length=32)] = None,
    status_: Annotated[list[ConnectionStatus] | None, Query(alias="status")] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ConnectionView]:
    stmt = select(Connection).where(merchant_clause(principal, Connection.merchant_id))
    if merchant_id is not None:
        stmt = stmt.where(Connection.merchant_id == merchant_id)
    if connector is not None:
        stmt = stmt.where(Connection.connector == connector)
    if status_:
        stmt = stmt.where(Connection.status.in_([s.value for s in status_]))
    sorts = {"id": Connection.id, "created_at": Connection.created_at}
    rows, nxt = await paginate(session, stmt, Connection.id, sort_key(sort, sorts), cursor, limit)
    return Page[ConnectionView](items=[ConnectionView.of(c) for c in rows], next_cursor=nxt)


@router.get("/connections/{connection_id}", response_model=ConnectionView, tags=["connections"])
async def get_connection(
    connection_id: IdPath, principal: Viewer, session: SessionDep
) -> ConnectionView:
    return ConnectionView.of(await load_connection(session, principal, connection_id))


@router.patch(
    "/connections/{connection_id}",
    response_model=ConnectionView,
    tags=["connections"],
    summary="Set an ERP connection's mode or its own request budget (null: the default)",
)
async def update_connection(
    connection_id: IdPath,
    data: ConnectionUpdate,
    principal: Operator,
    session: SessionDep,
    resources: ResourcesDep,
    request: Request,
) -> ConnectionView:
    """The budget applies to the next call the workers make for this account."""
    conn = await load_connection(session, principal, connection_id)
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        raise BadRequest(
            "Send mode and/or requests_per_minute (null for the connector's default).",
            code="nothing_to_change",
        )
    erp = resources.integrations.erps.get(conn.connector)
    if erp is None:
        raise InvalidRateSettings(
            f"connection {conn.id} is a {conn.connector} connection; only ERP connections "
            "have a mode and a request budget of their own."
        )
    connections.rate_budget(
        erp,
        changes.get("mode", conn.mode),
        changes.get("requests_per_minute", conn.requests_per_minute),
    )
    before = {name: getattr(conn, name) for name in changes}
    for name, value in changes.items():
        setattr(conn, name, value)
    await session.flush()
    record(
        session,
        principal,
        Origin.of(request),
        "connection.update",
        "connection",
        conn.id,
        merchant_id=conn.merchant_id,
        details={name: {"from": before[name], "to": changes[name]} for name in changes},
    )
    return ConnectionView.of(conn)


async def _pipelines_using(session: SessionDep, connection_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(Pipeline.id).where(
                or_(
                    Pipeline.source_connection_id == connection_id,
                    Pipeline.target_connection_id == connection_id,
                )
            )
        )
    )


@router.post(
    "/connections/{connection_id}/pause",
    response_model=ConnectionView,
    tags=["connections"],
    summary="Pause: runs using it wait (orders keep their place) until resumed",
)
async def pause_connection(
    connection_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> ConnectionView:
    conn = await load_connection(session, principal, connection_id)
    await session.refresh(conn, with_for_update=True)
    if conn.status != ConnectionStatus.paused:
        if conn.status != ConnectionStatus.active:
            raise Conflict(
                f"connection {conn.id} is {conn.status}; only an active one can be paused.",
                code="invalid_state",
            )
        conn.status = ConnectionStatus.paused
        await session.flush()
        record(
            session,
            principal,
            Origin.of(request),
            "connection.pause",
            "connection",
            conn.id,
            merchant_id=conn.merchant_id,
        )
    return ConnectionView.of(conn)


@router.post(
    "/connections/{connection_id}/resume",
    response_model=ConnectionView,
    tags=["connections"],
    summary="Resume a paused connection; the orders it held start again",
)
async def resume_connection(
    connection_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> ConnectionView:
    conn = await load_connection(session, principal, connection_id)
    await session.refresh(conn, with_for_update=True)
    if conn.status != ConnectionStatus.active:
        if conn.status != ConnectionStatus.paused:
            raise Conflict(
                f"connection {conn.id} is {conn.status}; link it again instead.",
                code="invalid_state",
            )
        conn.status = ConnectionStatus.active
        await session.flush()
        started = await service.resume_waiting_orders(
            session, await _pipelines_using(session, conn.id)
        )
        record(
            session,
            principal,
            Origin.of(request),
            "connection.resume",
            "connection",
            conn.id,
            merchant_id=conn.merchant_id,
            details={"orders_started": started},
        )
    return ConnectionView.of(conn)


@router.delete(
    "/connections/{connection_id}",
    response_model=ConnectionView,
    tags=["connections"],
    summary="Unlink: delete the tokens and stop the pipelines; history stays",
)
async def disconnect(
    connection_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> ConnectionView:
    conn = await load_connection(session, principal, connection_id)
    conn = await connections.disconnect(session, conn.merchant_id, conn.id)
    record(
        session,
        principal,
        Origin.of(request),
        "connection.disconnect",
        "connection",
        conn.id,
        merchant_id=conn.merchant_id,
    )
    return ConnectionView.of(conn)
