"""Reconciliation reports (JSON and CSV, totals first) and each pipeline's reconcile state."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from conexapi.connections.scope import MerchantScope
from conexapi.deps import SessionDep
from conexapi.kit import jobs
from conexapi.kit.errors import ValidationFailed
from conexapi.kit.tasks import BUILD_REPORT
from conexapi.models import (
    Pipeline,
    ReconciliationLine,
    ReconciliationReport,
    utcnow,
)
from conexapi.reconcile import repository
from conexapi.reconcile.metrics import first_seen_metrics
from conexapi.reconcile.schemas import (
    LineOut,
    ReconcileStatus,
    ReportOut,
    ReportPage,
    ReportQueued,
    ReportRequest,
    summary_of,
    totals_of,
)
from conexapi.reconcile.service import CURSOR, first_seen_counts
from conexapi.sync.days import local_date, pipeline_zones

router = APIRouter(prefix="/api/v1", tags=["reconciliation"], lifespan=first_seen_metrics)


async def _pipeline(session: SessionDep, scope: MerchantScope, pipeline_id: int) -> Pipeline:
    return await repository.merchant_pipeline(session, scope.merchant_id, pipeline_id)


async def _report(
    session: SessionDep, scope: MerchantScope, report_id: int
) -> tuple[ReconciliationReport, list[ReconciliationLine]]:
    return await repository.report_with_lines(session, scope.merchant_id, report_id)


@router.get("/reports", response_model=ReportPage)
async def list_reports(
    session: SessionDep,
    scope: MerchantScope,
    pipeline_id: int | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    cursor: int | None = Query(None, description="next_cursor of the previous page."),
    limit: int = Query(50, ge=1, le=500),
) -> ReportPage:
    """Reports of the merchant's pipelines, newest first, with their totals."""
    rows = await repository.reports(
        session,
        scope.merchant_id,
        limit=limit + 1,
        before_id=cursor,
        pipeline_id=pipeline_id,
        day_from=day_from,
        day_to=day_to,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return ReportPage(
        items=[summary_of(r) for r in rows], next_cursor=rows[-1].id if more else None
    )


# Declared before ``/reports/{report_id}`` so that ``7.csv`` is not read as an id.
@router.get(
    "/reports/{report_id}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Totals, then one row a line."}},
)
async def report_csv(report_id: int, session: SessionDep, scope: MerchantScope) -> Response:
    """The report as CSV: ``field,value`` rows with the totals, a blank row, then the
    differences with a header row."""
    report, lines = await _report(session, scope, report_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    totals = totals_of(report).model_dump()
    writer.writerow(["field", "value"])
    writer.writerow(["report_id", report.id])
    writer.writerow(["pipeline_id", report.pipeline_id])
    writer.writerow(["day", report.day.isoformat()])
    writer.writerow(["generated_at", report.generated_at.isoformat()])
    for name, value in totals.items():
        if isinstance(value, dict):
            for key, count in sorted(value.items()):
                writer.writerow([f"{name}.{key}", count])
        else:
            writer.writerow([name, value])
    writer.writerow([])
    writer.writerow(
        [
            "kind",
            "external_order_id",
            "order_status",
            "expected_total",
            "invoiced_total",
            "invoices",
            "detail",
        ]
    )
    for line in lines:
        writer.writerow(
            [
                line.kind,
                _cell(line.external_order_id),
                _cell(line.order_status),
                "" if line.expected_total is None else line.expected_total,
                "" if line.invoiced_total is None else line.invoiced_total,
                _cell(" ".join(str(i.get("name") or i.get("id")) for i in line.invoices)),
                _cell(line.detail),
            ]
        )
    filename = f"conexapi-report-{report.pipeline_id}-{report.day.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: str | None) -> str:
    """Text a spreadsheet would run as a formula is quoted (values come from upstream)."""
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


@router.get("/reports/{report_id}", response_model=ReportOut)
async def get_report(report_id: int, session: SessionDep, scope: MerchantScope) -> ReportOut:
    """One report: the totals, then the differences order by order."""
    report, lines = await _report(session, scope, report_id)
    return ReportOut(
        **summary_of(report).model_dump(),
        lines=[LineOut.model_validate(line) for line in lines],
    )


@router.post(
    "/pipelines/{pipeline_id}/reports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportQueued,
)
async def request_report(
    pipeline_id: int, data: ReportRequest, session: SessionDep, scope: MerchantScope
) -> ReportQueued:
    """Build (or rebuild) the report of one day now; it appears under ``/reports``."""
    await _pipeline(session, scope, pipeline_id)
    zone = (await pipeline_zones(session, Pipeline.id == pipeline_id))[pipeline_id]
    today = local_date(utcnow(), zone)
    if data.day > today:
        raise ValidationFailed(
            f"{data.day} has not begun in the pipeline's time zone ({zone}).",
            code="day_in_future",
        )
    if data.day < today - timedelta(days=365):
        # The marketplace keeps orders searchable for twelve months.
        raise ValidationFailed("the marketplace keeps a year of orders.", code="day_too_old")
    jobs.enqueue(BUILD_REPORT, pipeline_id, data.day.toordinal())
    return ReportQueued(pipeline_id=pipeline_id, day=data.day)


@router.get("/pipelines/{pipeline_id}/reconcile", response_model=ReconcileStatus)
async def reconcile_status(
    pipeline_id: int, session: SessionDep, scope: MerchantScope
) -> ReconcileStatus:
    """Where the periodic reconcile stands, and how recent orders were first seen."""
    await _pipeline(session, scope, pipeline_id)
    cursor = await repository.cursor_of(session, pipeline_id, CURSOR)
    seen = await first_seen_counts(session, pipeline_id, utcnow() - timedelta(hours=24))
    return ReconcileStatus(
        pipeline_id=pipeline_id,
        position=cursor.position if cursor else None,
        last_run_at=cursor.last_run_at if cursor else None,
        last_success_at=cursor.last_success_at if cursor else None,
        last_error=cursor.last_error if cursor else None,
        orders_seen=cursor.orders_seen if cursor else 0,
        syncs_requested=cursor.syncs_requested if cursor else 0,
        first_seen_24h=seen,
    )
