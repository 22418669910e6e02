"""The audit log: every action that changed something, who did it, when, from where."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from conexapi.audit import repository
from conexapi.audit.schemas import AuditOut
from conexapi.auth.deps import Viewer
from conexapi.deps import SessionDep
from conexapi.kit.api.openapi import COMMON_ERRORS
from conexapi.kit.api.pagination import Page, UtcDatetime, paginate, sort_key
from conexapi.kit.api.params import CursorQuery, IdQuery, LimitQuery
from conexapi.models import AuditEntry

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)


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
    stmt = repository.entries(
        principal,
        merchant_id=merchant_id,
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )
    sorting = sort_key("-id", {"id": AuditEntry.id})
    rows, nxt = await paginate(session, stmt, AuditEntry.id, sorting, cursor, limit)
    return Page[AuditOut](items=[AuditOut.model_validate(r) for r in rows], next_cursor=nxt)
