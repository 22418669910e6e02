"""Queries behind the pipelines and mappings endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import merchant_clause
from conexapi.models import Mapping, MappingKind, Pipeline, PipelineStatus

PIPELINE_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": Pipeline.id,
    "created_at": Pipeline.created_at,
}


def pipelines(
    principal: Principal,
    *,
    merchant_id: int | None = None,
    statuses: Sequence[PipelineStatus] | None = None,
) -> Select[Pipeline]:
    stmt = select(Pipeline).where(merchant_clause(principal, Pipeline.merchant_id))
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if statuses:
        stmt = stmt.where(Pipeline.status.in_([s.value for s in statuses]))
    return stmt


def mappings(
    pipeline_id: int, *, kind: MappingKind | None = None, source_value: str | None = None
) -> Select[Mapping]:
    stmt = select(Mapping).where(Mapping.pipeline_id == pipeline_id)
    if kind is not None:
        stmt = stmt.where(Mapping.kind == kind)
    if source_value is not None:
        stmt = stmt.where(Mapping.source_value == source_value)
    return stmt


async def mapping_targets(session: AsyncSession, pipeline_id: int) -> dict[tuple[str, str], str]:
    """The pipeline's mappings as (kind, source value) → target value."""
    return {
        (m.kind, m.source_value): m.target_value
        for m in await session.scalars(select(Mapping).where(Mapping.pipeline_id == pipeline_id))
    }
