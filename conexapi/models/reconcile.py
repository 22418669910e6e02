"""Where reconciliation stands per pipeline, and what it found per day."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import (
    Base,
    BigId,
    IdMixin,
    Json,
    Money,
    TimestampMixin,
    UTCDateTime,
    utcnow,
)


class SyncCursor(IdMixin, TimestampMixin, Base):
    """How far a pipeline's periodic reconcile has read the marketplace.

    ``position`` only moves once every order updated before it has been compared (the
    window is done); the next window starts a look-back before it.
    """

    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)

    pipeline_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    #: What reads with this cursor; ``reconcile`` for now.
    name: Mapped[str] = mapped_column(String(32), nullable=False, default="reconcile")
    position: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    #: Orders read and syncs requested by the last completed window.
    orders_seen: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    syncs_requested: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class DifferenceKind(StrEnum):
    #: A sale that should be invoiced has no invoice in the ERP.
    missing_invoice = "missing_invoice"
    #: The ERP invoice's total is not what the buyer paid.
    amount_mismatch = "amount_mismatch"
    #: An ERP invoice names a marketplace order that does not exist or is not invoiceable.
    invoice_without_order = "invoice_without_order"
    #: More than one ERP invoice for one order.
    duplicate_invoice = "duplicate_invoice"
    #: The order was cancelled after its invoice was made: a credit note is due.
    cancelled_after_invoice = "cancelled_after_invoice"


class ReconciliationReport(IdMixin, Base):
    """One pipeline and one day (Colombia): sales to invoice against invoices found."""

    __tablename__ = "reconciliation_reports"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "day"),
        Index("ix_reconciliation_reports_day", "day"),
    )

    pipeline_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[date] = mapped_column(Date, nullable=False)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    #: Marketplace orders of the day (any status) and those that should be invoiced.
    orders_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    orders_to_invoice: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: What the buyers of the orders to invoice paid (goods and shipping).
    gross_sales: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    #: ERP invoices found for those orders, and their totals.
    invoices_found: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    invoiced_total: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    cancelled_orders: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: ERP invoices of the day that name no marketplace order (the merchant's other sales).
    other_invoices: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    differences: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Differences by kind, and how the orders to invoice were first seen
    #: (``{"webhook": n, "reconcile": n, "unseen": n}``).
    by_kind: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    first_seen: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class ReconciliationLine(IdMixin, Base):
    """One difference, order by order."""

    __tablename__ = "reconciliation_lines"
    __table_args__ = (Index("ix_reconciliation_lines_report_id_kind", "report_id", "kind"),)

    report_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("reconciliation_reports.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    external_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: What the buyer paid, when the order is known.
    expected_total: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    #: Sum of the totals of the invoices involved.
    invoiced_total: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    #: ``[{"id", "name", "date", "total"}]`` of the ERP invoices involved.
    invoices: Mapped[list[dict[str, Any]]] = mapped_column(Json, nullable=False, default=list)
    detail: Mapped[str] = mapped_column(String(500), nullable=False, default="")
