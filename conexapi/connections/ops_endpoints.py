"""Connections as ops see them: list, inspect, set budgets, pause, resume, disconnect."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from conexapi.auth.deps import Operator, Viewer
from conexapi.connections import admin, repository
from conexapi.connections import service as connections
from conexapi.connections.schemas import ConnectionUpdate, ConnectionView
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.api.openapi import COMMON_ERRORS
from conexapi.kit.api.pagination import Page, paginate, sort_key
from conexapi.kit.api.params import CursorQuery, IdPath, IdQuery, LimitQuery
from conexapi.kit.api.scoping import load_connection
from conexapi.models import Connection, ConnectionStatus

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)


@router.get(
    "/connections",
    response_model=Page[ConnectionView],
    tags=["connections"],
    summary="Connections: status, last error, token expiry",
)
async def list_connections(
    principal: Viewer,
    session: SessionDep,
    merchant_id: IdQuery = None,
    connector: Annotated[str | None, Query(max_length=32)] = None,
    status_: Annotated[list[ConnectionStatus] | None, Query(alias="status")] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ConnectionView]:
    stmt = repository.connections(
        principal, merchant_id=merchant_id, connector=connector, statuses=status_
    )
    sorting = sort_key(sort, repository.CONNECTION_SORTS)
    rows, nxt = await paginate(session, stmt, Connection.id, sorting, cursor, limit)
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
    erp = resources.integrations.erps.get(conn.connector)
    before = await admin.update_budget(session, conn, erp, changes)
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
    if await admin.pause(session, conn):
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
    started = await admin.resume(session, conn)
    if started is not None:
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
