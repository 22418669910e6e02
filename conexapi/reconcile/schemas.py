from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from conexapi.models import DifferenceKind, ReconciliationReport


class ReportTotals(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    orders_total: int = Field(description="Marketplace orders sold that day, any status.")
    orders_to_invoice: int = Field(description="Of those, the ones that should be invoiced.")
    gross_sales: Decimal = Field(description="What their buyers paid (goods and shipping).")
    invoices_found: int = Field(description="ERP invoices found for them.")
    invoiced_total: Decimal = Field(description="The totals of those invoices.")
    difference: Decimal = Field(description="gross_sales - invoiced_total.")
    cancelled_orders: int
    other_invoices: int = Field(
        description="ERP invoices of the day that name no marketplace order."
    )
    differences: int = Field(description="Lines below.")
    by_kind: dict[str, int]
    first_seen: dict[str, int] = Field(
        description="How the orders to invoice were first seen: webhook, reconcile or unseen."
    )


class ReportSummary(BaseModel):
    id: int
    pipeline_id: int
    day: date
    generated_at: datetime
    totals: ReportTotals


class InvoiceRef(BaseModel):
    id: str
    name: str
    date: date
    total: Decimal


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: DifferenceKind
    external_order_id: str | None
    order_status: str | None
    expected_total: Decimal | None
    invoiced_total: Decimal | None
    invoices: list[InvoiceRef]
    detail: str


class ReportOut(ReportSummary):
    lines: list[LineOut]


class ReportPage(BaseModel):
    items: list[ReportSummary]
    next_cursor: int | None


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date = Field(description="The day, in the pipeline's time zone, to (re)build.")


class ReportQueued(BaseModel):
    pipeline_id: int
    day: date
    status: str = "queued"


class ReconcileStatus(BaseModel):
    pipeline_id: int
    position: datetime | None = Field(
        description="Every order updated before this was compared with the marketplace."
    )
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    orders_seen: int
    syncs_requested: int
    first_seen_24h: dict[str, int] = Field(
        description="Orders of the last 24 hours by how they were first seen; orders seen "
        "only by reconcile mean the marketplace's notifications are not arriving."
    )


def totals_of(report: ReconciliationReport) -> ReportTotals:
    return ReportTotals(
        orders_total=report.orders_total,
        orders_to_invoice=report.orders_to_invoice,
        gross_sales=report.gross_sales,
        invoices_found=report.invoices_found,
        invoiced_total=report.invoiced_total,
        difference=report.gross_sales - report.invoiced_total,
        cancelled_orders=report.cancelled_orders,
        other_invoices=report.other_invoices,
        differences=report.differences,
        by_kind=dict(report.by_kind or {}),
        first_seen=dict(report.first_seen or {}),
    )


def summary_of(report: ReconciliationReport) -> ReportSummary:
    return ReportSummary(
        id=report.id,
        pipeline_id=report.pipeline_id,
        day=report.day,
        generated_at=report.generated_at,
        totals=totals_of(report),
    )
