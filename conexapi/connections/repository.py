"""Queries behind the connections endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import merchant_clause
from conexapi.models import Connection, ConnectionStatus, Pipeline

CONNECTION_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": Connection.id,
    "created_at": Connection.created_at,
}


def connections(
    principal: Principal,
    *,
    merchant_id: int | None = None,
    connector: str | None = None,
    statuses: Sequence[ConnectionStatus] | None = None,
) -> Select[Connection]:
    stmt = select(Connection).where(merchant_clause(principal, Connection.merchant_id))
    if merchant_id is not None:
        stmt = stmt.where(Connection.merchant_id == merchant_id)
    if connector is not None:
        stmt = stmt.where(Connection.connector == connector)
    if statuses:
        stmt = stmt.where(Connection.status.in_([s.value for s in statuses]))
    return stmt


async def pipelines_using(session: AsyncSession, connection_id: int) -> list[int]:
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
