"""Queries behind the reconciliation endpoints, within the caller's merchant."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.errors import NotFound
from conexapi.models import Pipeline, ReconciliationLine, ReconciliationReport, SyncCursor


async def merchant_pipeline(session: AsyncSession, merchant_id: int, pipeline_id: int) -> Pipeline:
    """The merchant's pipeline, or 404 (another merchant's reads as missing)."""
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.merchant_id != merchant_id:
        raise NotFound(f"pipeline {pipeline_id} not found.")
    return pipeline


async def report_with_lines(
    session: AsyncSession, merchant_id: int, report_id: int
) -> tuple[ReconciliationReport, list[ReconciliationLine]]:
    report = await session.scalar(
        select(ReconciliationReport)
        .join(Pipeline, Pipeline.id == ReconciliationReport.pipeline_id)
        .where(ReconciliationReport.id == report_id, Pipeline.merchant_id == merchant_id)
    )
    if report is None:
        raise NotFound(f"report {report_id} not found.")
    lines = await session.scalars(
        select(ReconciliationLine)
        .where(ReconciliationLine.report_id == report.id)
        .order_by(ReconciliationLine.kind, ReconciliationLine.external_order_id)
    )
    return report, list(lines)


async def reports(
    session: AsyncSession,
    merchant_id: int,
    *,
    limit: int,
    before_id: int | None = None,
    pipeline_id: int | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
) -> list[ReconciliationReport]:
    """Up to ``limit`` of the merchant's reports, newest first."""
    stmt = (
        select(ReconciliationReport)
        .join(Pipeline, Pipeline.id == ReconciliationReport.pipeline_id)
        .where(Pipeline.merchant_id == merchant_id)
        .order_by(ReconciliationReport.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(ReconciliationReport.id < before_id)
    if pipeline_id is not None:
        stmt = stmt.where(ReconciliationReport.pipeline_id == pipeline_id)
    if day_from is not None:
        stmt = stmt.where(ReconciliationReport.day >= day_from)
    if day_to is not None:
        stmt = stmt.where(ReconciliationReport.day <= day_to)
    return list(await session.scalars(stmt))


async def cursor_of(session: AsyncSession, pipeline_id: int, name: str) -> SyncCursor | None:
    return await session.scalar(
        select(SyncCursor).where(SyncCursor.pipeline_id == pipeline_id, SyncCursor.name == name)
    )
