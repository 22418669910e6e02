"""What an operator does to a linked connection: its ERP budget, pause and resume."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.connections import repository
from conexapi.connections.errors import InvalidRateSettings
from conexapi.connections.service import rate_budget
from conexapi.kit.errors import BadRequest, Conflict
from conexapi.models import Connection, ConnectionStatus
from conexapi.sync.retries import resume_waiting_orders
from connectors.base import ErpConnector


async def update_budget(
    session: AsyncSession, conn: Connection, erp: ErpConnector | None, changes: dict[str, Any]
) -> dict[str, Any]:
    """Set an ERP connection's mode and/or request budget; what each field was before."""
    if not changes:
        raise BadRequest(
            "Send mode and/or requests_per_minute (null for the connector's default).",
            code="nothing_to_change",
        )
    if erp is None:
        raise InvalidRateSettings(
            f"connection {conn.id} is a {conn.connector} connection; only ERP connections "
            "have a mode and a request budget of their own."
        )
    rate_budget(
        erp,
        changes.get("mode", conn.mode),
        changes.get("requests_per_minute", conn.requests_per_minute),
    )
    before = {name: getattr(conn, name) for name in changes}
    for name, value in changes.items():
        setattr(conn, name, value)
    await session.flush()
    return before


async def pause(session: AsyncSession, conn: Connection) -> bool:
    """Pause an active connection (runs using it wait); False when it already was."""
    await session.refresh(conn, with_for_update=True)
    if conn.status == ConnectionStatus.paused:
        return False
    if conn.status != ConnectionStatus.active:
        raise Conflict(
            f"connection {conn.id} is {conn.status}; only an active one can be paused.",
            code="invalid_state",
        )
    conn.status = ConnectionStatus.paused
    await session.flush()
    return True


async def resume(session: AsyncSession, conn: Connection) -> int | None:
    """Resume a paused connection and start the orders it held: how many (None when it
    was active already)."""
    await session.refresh(conn, with_for_update=True)
    if conn.status == ConnectionStatus.active:
        return None
    if conn.status != ConnectionStatus.paused:
        raise Conflict(
            f"connection {conn.id} is {conn.status}; link it again instead.",
            code="invalid_state",
        )
    conn.status = ConnectionStatus.active
    await session.flush()
    return await resume_waiting_orders(session, await repository.pipelines_using(session, conn.id))
