"""The audit-log query, within the caller's scope."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import merchant_clause
from conexapi.models import AuditEntry


def entries(
    principal: Principal,
    *,
    merchant_id: int | None = None,
    action: str | None = None,
    actor_type: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
) -> Select[AuditEntry]:
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
    return stmt
