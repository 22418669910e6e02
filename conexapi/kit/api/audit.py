"""The audit log: every action that changes something, who did it, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.auth.principal import Principal
from conexapi.kit.context import get_request_id
from conexapi.models import AuditEntry, utcnow


@dataclass(frozen=True)
class Origin:
    ip: str | None
    user_agent: str | None
    request_id: str | None

    @classmethod
    def of(cls, request: Request) -> Origin:
        agent = request.headers.get("user-agent")
        return cls(
            ip=request.client.host if request.client else None,
            user_agent=agent[:255] if agent else None,
            request_id=get_request_id(),
        )


def record(
    session: AsyncSession,
    actor: Principal | None,
    origin: Origin | None,
    action: str,
    target_type: str,
    target_id: object | None = None,
    *,
    merchant_id: int | None = None,
    details: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction: it is kept only if the change is."""
    entry = AuditEntry(
        occurred_at=utcnow(),
        actor_type=actor.kind if actor else "anonymous",
        actor_id=str(actor.id) if actor else None,
        actor_label=(actor.label if actor else actor_label or "")[:254],
        action=action,
        merchant_id=merchant_id,
        target_type=target_type,
        target_id=str(target_id)[:64] if target_id is not None else None,
        details=details or {},
        ip=origin.ip if origin else None,
        user_agent=origin.user_agent if origin else None,
        request_id=origin.request_id if origin else None,
    )
    session.add(entry)
    return entry
