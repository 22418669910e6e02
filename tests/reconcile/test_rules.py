"""The pure decisions of reconciliation: windows, what needs a sync, how a day differs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from conexapi.models import DifferenceKind, OrderState
from conexapi.pipelines.schemas import PipelineSettings
from conexapi.reconcile.rules import (
    InvoiceFact,
    Known,
    compare,
    needs_sync,
    sale_day,
    windows,
)
from conexapi.sync.mapping import Mappings
from connectors.colombia.zone import TIME_ZONE
from connectors.models import BuyerIdentity, Invoice, Order, OrderLine, OrderStatus, Payment
from connectors.siigo.document import map_invoice, order_reference
from connectors.siigo.schemas import invoice_body

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 10)


def order(
    oid: str,
    *,
    status: OrderStatus = OrderStatus.paid,
    price: str = "119000",
    qty: int = 1,
    shipping: str = "0",
    updated: datetime = T0,
    closed: datetime | None = T0,
    payments: bool = True,
) -> Order:
    return Order(
        connector="mercadolibre",
        external_id=oid,
        account_id="468424240",
        status=status,
        raw_status=str(status),
        currency="COP",
        closed_at=closed,
        created_at=closed,
        updated_at=updated,
        lines=[
            OrderLine(
                item_id="MCO1",
                sku="CAM-ALG-M",
                title="Camiseta",
                quantity=Decimal(qty),
                unit_price=Decimal(price),
            )
        ],
        total_amount=Decimal(price) * qty,
        shipping_cost=Decimal(shipping),
        buyer=BuyerIdentity(
            external_id="1",
            doc_type="CC",
            doc_number="1032456789",
            first_name="Ana",
            last_name="Díaz",
        ),
        payments=(
            [Payment(id="p1", status="approved", amount=Decimal(price) * qty)] if payments else []
        ),
    )


def known(**values: Any) -> Known:
    base: dict[str, Any] = {
        "state": OrderState.invoiced,
        "order_status": "paid",
        "order_total": Decimal("119000"),
        "order_updated_at": T0,
        "erp_document_id": "inv-1",
        "erp_document_name": "FV-1-1",
        "first_seen_via": "webhook",
    }
    base.update(values)
    return Known(**base)


def fact(
    iid: str, ref: str | None, total: str = "119000", day: date = DAY, name: str | None = None
) -> InvoiceFact:
    return InvoiceFact(iid, name or f"FV-1-{iid}", day, Decimal(total), ref)


# --- windows -----------------------------------------------------------------------------


def test_windows_bring_the_cursor_to_now_minus_lag_each_looking_back() -> None:
    got = windows(
        T0 - timedelta(hours=50),
        T0,
        lookback=timedelta(minutes=15),
        lag=timedelta(minutes=1),
        max_span=timedelta(hours=24),
    )
    assert [w.end for w in got] == [
        T0 - timedelta(hours=26),
        T0 - timedelta(hours=2),
        T0 - timedelta(minutes=1),
    ]
    points = [T0 - timedelta(hours=50)] + [w.end for w in got[:-1]]
    assert [w.start for w in got] == [p - timedelta(minutes=15) for p in points]


def test_no_window_when_the_cursor_is_within_the_lag() -> None:
    lag = timedelta(minutes=1)
    kwargs = {"lookback": timedelta(minutes=15), "lag": lag, "max_span": timedelta(days=1)}
    assert windows(T0 - lag, T0, **kwargs) == []
    assert windows(T0, T0, **kwargs) == []


# --- what needs a sync ---------------------------------------------------------------------


def test_an_order_the_product_never_saw_needs_a_sync() -> None:
    assert needs_sync(None, order("1"))


def test_an_order_unchanged_since_its_run_needs_nothing() -> None:
    assert not needs_sync(known(), order("1"))


@pytest.mark.parametrize(
    ("record", "seen"),
    [
        (known(), order("1", updated=T0 + timedelta(seconds=1))),
        (known(), order("1", status=OrderStatus.cancelled)),
        (known(order_total=Decimal("100000")), order("1")),
        (known(state=OrderState.pending, order_updated_at=None), order("1")),
    ],
    ids=["updated-later", "status-changed", "total-changed", "pending-never-read"],
)
def test_changed_orders_need_a_sync(record: Known, seen: Order) -> None:
    assert needs_sync(record, seen)


def test_no_payments_in_a_result_is_not_a_changed_total() -> None:
    assert not needs_sync(known(order_total=Decimal("100000")), order("1", payments=False))


def test_an_order_whose_run_never_read_it_is_left_to_its_retries() -> None:
    record = known(state=OrderState.retry_scheduled, order_updated_at=None, order_status=None)
    assert not needs_sync(record, order("1"))


# --- tying an invoice to its order ----------------------------------------------------------


def test_an_invoice_names_its_order_as_the_product_wrote_it() -> None:
    settings = PipelineSettings(
        document_type_id="24446", seller_id="629", payment_type_id="5636", tax_id="13156"
    )
    sale = order("2000012345678901")
    mapped = map_invoice(sale, settings, Mappings(sku={"CAM-ALG-M": "CAM-ALG-M"}), DAY)
    body = invoice_body(mapped.draft)  # what Siigo receives and lists back
    invoice = Invoice(
        id="x", name="FV-1-9", date=DAY, customer_identification="1", total=Decimal(1), raw=body
    )
    assert order_reference(invoice, "mercadolibre") == "2000012345678901"
    assert order_reference(invoice, "shopify") is None


@pytest.mark.parametrize(
    "raw",
    [{}, {"observations": "Venta mostrador 12"}, {"observations": None, "name": "FV-1-2"}],
)
def test_an_invoice_of_another_sale_names_no_order(raw: dict[str, Any]) -> None:
    invoice = Invoice(
        id="x", name="FV-1-2", date=DAY, customer_identification="1", total=Decimal(1), raw=raw
    )
    assert order_reference(invoice, "mercadolibre") is None


def test_sale_day_is_the_colombian_day_of_payment() -> None:
    late = datetime(2026, 3, 11, 3, 30, tzinfo=UTC)  # 22:30 on the 10th in Bogotá
    assert sale_day(order("1", closed=late), TIME_ZONE) == DAY


# --- the day's differences ------------------------------------------------------------------


def invoiceable(o: Order) -> bool:
    return o.status is OrderStatus.paid


def test_every_kind_of_difference_is_found_order_by_order() -> None:
    orders = [
        order("ok"),
        order("cent", price="119000.01"),  # invoiced one cent below: the money rule
        order("deleted"),
        order("edited"),
        order("twice"),
        order("unseen"),
        order("cancelled", status=OrderStatus.cancelled),
        order("cancelled-clean", status=OrderStatus.cancelled),
        order("unpaid", status=OrderStatus.pending),
    ]
    invoices = [
        fact("1", "ok"),
        fact("2", "cent"),
        fact("3", "edited", total="1000"),
        fact("4", "twice"),
        fact("5", "twice", day=DAY + timedelta(days=1)),
        fact("6", "cancelled"),
        fact("7", "ghost"),
        fact("8", "yesterday"),
        fact("9", None),
        fact("10", "ghost-tomorrow", day=DAY + timedelta(days=1)),
    ]
    records = {
        "ok": known(first_seen_via="webhook"),
        "cent": known(first_seen_via="reconcile"),
        "deleted": known(erp_document_id="gone", erp_document_name="FV-1-0"),
        "edited": known(),
        "twice": known(),
    }
    result = compare(
        DAY, orders, invoices, records, invoiceable=invoiceable, accounted={"yesterday"}
    )
    lines = {(line.kind, line.external_order_id) for line in result.lines}
    assert lines == {
        (DifferenceKind.missing_invoice, "deleted"),
        (DifferenceKind.missing_invoice, "unseen"),
        (DifferenceKind.amount_mismatch, "edited"),
        (DifferenceKind.duplicate_invoice, "twice"),
        (DifferenceKind.cancelled_after_invoice, "cancelled"),
        (DifferenceKind.invoice_without_order, "ghost"),
    }
    by = {line.external_order_id: line for line in result.lines}
    assert "FV-1-0" in by["deleted"].detail and "no longer" in by["deleted"].detail
    assert "not seen" in by["unseen"].detail
    assert by["twice"].invoiced_total == Decimal("238000")
    assert [i.id for i in by["twice"].invoices] == ["4", "5"]
    assert by["edited"].expected_total == Decimal("119000")
    assert by["edited"].invoiced_total == Decimal("1000")

    assert result.orders_total == 9
    assert result.orders_to_invoice == 6
    assert result.gross_sales == Decimal("119000") * 6 + Decimal("0.01")
    assert result.invoices_found == 5  # ok, cent, edited, twice (two)
    assert result.invoiced_total == Decimal("119000") * 4 + Decimal("1000")
    assert result.cancelled_orders == 2
    assert result.other_invoices == 1
    assert result.first_seen == {"webhook": 4, "reconcile": 1, "unseen": 1}
    assert result.by_kind == {
        "missing_invoice": 2,
        "amount_mismatch": 1,
        "duplicate_invoice": 1,
        "cancelled_after_invoice": 1,
        "invoice_without_order": 1,
    }


def test_an_invoice_for_an_order_not_yet_paid_is_a_difference() -> None:
    result = compare(
        DAY,
        [order("1", status=OrderStatus.pending)],
        [fact("1", "1")],
        {},
        invoiceable=invoiceable,
        accounted=set(),
    )
    assert [(line.kind, line.external_order_id) for line in result.lines] == [
        (DifferenceKind.invoice_without_order, "1")
    ]
    assert result.orders_to_invoice == 0 and result.invoices_found == 0


def test_a_day_that_matches_has_no_lines() -> None:
    orders = [order(str(i), price=str(1000 * i)) for i in range(1, 6)]
    invoices = [fact(str(i), str(i), total=str(1000 * i)) for i in range(1, 6)]
    result = compare(DAY, orders, invoices, {}, invoiceable=invoiceable, accounted=set())
    assert result.lines == []
    assert result.gross_sales == result.invoiced_total == Decimal(15000)
