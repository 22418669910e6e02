"""The decisions of reconciliation, as pure functions: which windows to read, which orders
need a sync, and how sales and invoices of one day differ."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from conexapi.models import DifferenceKind, OrderState
from conexapi.sync.mapping import paid_for_goods_and_shipping
from connectors.models import Order, OrderStatus

CENT = Decimal("0.01")

# --- reading the marketplace --------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def windows(
    position: datetime,
    now: datetime,
    *,
    lookback: timedelta,
    lag: timedelta,
    max_span: timedelta,
) -> list[Window]:
    """The windows that bring the cursor from ``position`` up to ``now - lag``.

    Each starts ``lookback`` before the point the previous one ended (or the cursor), so
    an order whose update the search showed late is still read; each is at most
    ``max_span`` long past that point, so a cursor far behind advances window by window.
    """
    end = now - lag
    out: list[Window] = []
    point = position
    while point < end:
        stop = min(point + max_span, end)
        out.append(Window(point - lookback, stop))
        point = stop
    return out


@dataclass(frozen=True)
class Known:
    """What the product has recorded about one marketplace order."""

    state: str
    order_status: str | None
    order_total: Decimal | None
    order_updated_at: datetime | None
    erp_document_id: str | None
    erp_document_name: str | None
    first_seen_via: str


def needs_sync(known: Known | None, order: Order) -> bool:
    """True when the search shows an order the product lacks or has older than this.

    Search results lack the buyer's fiscal data, so they are compared, never invoiced
    from: the run fetches the order itself. An order whose run never read it is left to
    its run (or to the sweeper), except a pending one: that is an order whose job was
    lost before anything happened, and asking again coalesces with a run still queued.
    """
    if known is None:
        return True
    if known.order_updated_at is None:
        return known.state == OrderState.pending
    if order.updated_at is not None and order.updated_at > known.order_updated_at:
        return True
    if known.order_status is not None and order.raw_status != known.order_status:
        return True
    # Shipping comes from the payments; a result without them would look changed forever.
    return bool(
        order.payments
        and known.order_total is not None
        and order.total_amount + order.shipping_cost != known.order_total
    )


# --- the daily report ---------------------------------------------------------------------


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """A calendar day in ``zone`` (the pipeline's) as an aware half-open interval."""
    start = datetime.combine(day, time(0), zone)
    return start, start + timedelta(days=1)


def sale_day(order: Order, zone: tzinfo) -> date | None:
    """The day (in ``zone``, the pipeline's) a sale counts for: when it was paid
    (``closed_at``), else created."""
    moment = order.closed_at or order.created_at
    return moment.astimezone(zone).date() if moment is not None else None


def total_matches(paid: Decimal, invoiced: Decimal) -> bool:
    # The money rule invoices exactly what the buyer paid, or one cent below it where no
    # choice of tax bases reaches the amount (see connectors.siigo.money).
    return paid - CENT <= invoiced <= paid


@dataclass(frozen=True)
class InvoiceFact:
    id: str
    name: str
    date: date
    total: Decimal
    #: The marketplace order the invoice belongs to, in the marketplace's canonical
    #: spelling: the order the document itself names, else the product's record of it.
    #: Invoices are grouped by it, so two for one order are a duplicate whatever their keys.
    order_ref: str | None

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "date": self.date.isoformat(),
            "total": str(self.total),
        }


@dataclass
class Line:
    kind: DifferenceKind
    external_order_id: str | None
    order_status: str | None
    expected_total: Decimal | None
    invoices: list[InvoiceFact]
    detail: str

    @property
    def invoiced_total(self) -> Decimal | None:
        if not self.invoices:
            return None
        return sum((i.total for i in self.invoices), Decimal(0))


@dataclass
class Comparison:
    orders_total: int = 0
    orders_to_invoice: int = 0
    gross_sales: Decimal = Decimal(0)
    invoices_found: int = 0
    invoiced_total: Decimal = Decimal(0)
    cancelled_orders: int = 0
    other_invoices: int = 0
    first_seen: Counter[str] = field(default_factory=Counter)
    lines: list[Line] = field(default_factory=list)

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(Counter(str(line.kind) for line in self.lines))


def _names(invoices: Iterable[InvoiceFact]) -> str:
    return ", ".join(i.name or i.id for i in invoices)


def compare(
    day: date,
    orders: Iterable[Order],
    invoices: Iterable[InvoiceFact],
    known: dict[str, Known],
    *,
    invoiceable: Callable[[Order], bool],
    accounted: set[str],
) -> Comparison:
    """How the day's sales and the ERP's invoices differ, order by order.

    ``orders`` are the marketplace orders sold on ``day``; ``invoices`` every ERP invoice
    dated that day plus those found for the day's orders on later days; ``accounted`` the
    orders named by invoices that exist elsewhere (another day, another pipeline), which
    are not this report's business.
    """
    result = Comparison()
    invoices = list(invoices)
    by_order: dict[str, list[InvoiceFact]] = {}
    for invoice in invoices:
        if invoice.order_ref is not None:
            by_order.setdefault(invoice.order_ref, []).append(invoice)
    day_orders: set[str] = set()
    for order in orders:
        day_orders.add(order.external_id)
        result.orders_total += 1
        tied = sorted(by_order.get(order.external_id, []), key=lambda i: (i.date, i.name))
        record = known.get(order.external_id)
        if order.status in (OrderStatus.cancelled, OrderStatus.invalid):
            result.cancelled_orders += 1
            if tied:
                result.lines.append(
                    Line(
                        DifferenceKind.cancelled_after_invoice,
                        order.external_id,
                        order.raw_status,
                        None,
                        tied,
                        f"order {order.raw_status} after invoicing ({_names(tied)}): "
                        "a credit note is due",
                    )
                )
            continue
        if not invoiceable(order):
            if tied:
                result.lines.append(
                    Line(
                        DifferenceKind.invoice_without_order,
                        order.external_id,
                        order.raw_status,
                        None,
                        tied,
                        f"invoiced ({_names(tied)}) but the order is {order.raw_status}: "
                        "nothing to invoice yet",
                    )
                )
            continue
        paid = paid_for_goods_and_shipping(order)
        result.orders_to_invoice += 1
        result.gross_sales += paid
        result.first_seen[record.first_seen_via if record else "unseen"] += 1
        if not tied:
            if record is not None and record.erp_document_id:
                detail = (
                    f"invoiced as {record.erp_document_name or record.erp_document_id}, "
                    "which the ERP no longer has"
                )
            elif record is not None:
                detail = f"no invoice; the product has the order as {record.state}"
            else:
                detail = "no invoice; the product has not seen the order yet"
            result.lines.append(
                Line(
                    DifferenceKind.missing_invoice,
                    order.external_id,
                    order.raw_status,
                    paid,
                    [],
                    detail,
                )
            )
            continue
        result.invoices_found += len(tied)
        result.invoiced_total += sum((i.total for i in tied), Decimal(0))
        if len(tied) > 1:
            result.lines.append(
                Line(
                    DifferenceKind.duplicate_invoice,
                    order.external_id,
                    order.raw_status,
                    paid,
                    tied,
                    f"{len(tied)} invoices for one order: {_names(tied)}",
                )
            )
        elif not total_matches(paid, tied[0].total):
            result.lines.append(
                Line(
                    DifferenceKind.amount_mismatch,
                    order.external_id,
                    order.raw_status,
                    paid,
                    tied,
                    f"{tied[0].name or tied[0].id} totals {tied[0].total}; the buyer paid {paid}",
                )
            )
    for invoice in invoices:
        if invoice.date != day or invoice.order_ref in day_orders:
            continue
        if invoice.order_ref is None:
            result.other_invoices += 1
        elif invoice.order_ref not in accounted:
            result.lines.append(
                Line(
                    DifferenceKind.invoice_without_order,
                    invoice.order_ref,
                    None,
                    None,
                    [invoice],
                    f"{invoice.name or invoice.id} names order {invoice.order_ref}, "
                    "which the marketplace does not have",
                )
            )
    return result
