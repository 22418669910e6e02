"""Connector behaviour against respx: order mapping and billing info."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import respx

from connectors.errors import DataError, TransientError
from connectors.mercadolibre import MercadoLibreConnector
from connectors.mercadolibre.mapping import map_order
from connectors.models import Order, OrderStatus
from tests.connectors.mercadolibre.fixtures import (
    API,
    BILLING_ID,
    TOKEN,
    cc_billing,
    mco_order,
    mock_order,
    nit_billing,
)

# --- fetch_order / mapping -------------------------------------------------------------------


@respx.mock
async def test_fetch_order_maps_everything(connector: MercadoLibreConnector) -> None:
    mock_order(mco_order(), nit_billing())
    order = await connector.fetch_order(TOKEN, "2000010733434062")
    assert order.external_id == "2000010733434062"
    assert order.account_id == "468424240"
    assert order.pack_id == "2000004455667788"
    assert order.status is OrderStatus.paid
    assert order.raw_status == "paid"
    assert order.currency == "COP"
    assert order.site == "MCO"
    assert order.created_at == datetime(2026, 3, 2, 14, 1, 50, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 3, 2, 15, 0, 0, 120000, tzinfo=UTC)
    first, second = order.lines
    assert first.sku == "AUD-BT-500"  # seller_sku wins over seller_custom_field
    assert second.sku == "CAR-USBC-20W"  # else seller_custom_field
    assert first.variation_id == "174000111222"
    assert (first.quantity, first.unit_price, first.full_unit_price) == (
        Decimal(2),
        Decimal(80910),
        Decimal(89900),
    )
    assert second.unit_price == Decimal("39900.5")
    assert second.full_unit_price is None
    assert order.total_amount == Decimal("201720.5")
    # Shipping from the approved payment only, not the rejected one.
    assert order.shipping_cost == Decimal(12900)
    assert order.prices_include_tax is True
    assert [p.status for p in order.payments] == ["approved", "rejected"]
    assert order.payments[0].amount == Decimal("201720.5")
    buyer = order.buyer
    assert buyer.complete is True
    assert (buyer.doc_type, buyer.doc_number, buyer.person_type) == ("NIT", "900123456", "company")
    assert buyer.company_name == "Distribuciones Andina S.A.S."
    assert buyer.first_name is None
    assert buyer.address is not None
    assert buyer.address.street == "Calle 100 # 15-20"
    assert buyer.address.city == "Bogotá D.C."
    assert buyer.external_id == "2212631646"


@respx.mock
async def test_cc_buyer_is_a_person(connector: MercadoLibreConnector) -> None:
    mock_order(mco_order(), cc_billing())
    buyer = (await connector.fetch_order(TOKEN, "2000010733434062")).buyer
    assert (buyer.doc_type, buyer.doc_number, buyer.person_type) == ("CC", "1020304050", "person")
    assert (buyer.first_name, buyer.last_name, buyer.company_name) == ("Laura", "Gómez Rojas", None)
    assert buyer.complete is True


@respx.mock
async def test_billing_info_still_processing_is_incomplete(
    connector: MercadoLibreConnector,
) -> None:
    billing = nit_billing()
    info = billing["buyer"]["billing_info"]
    info.update(
        name=None, identification={"type": None, "number": None}, address=None, attributes=None
    )
    mock_order(mco_order(), billing)
    buyer = (await connector.fetch_order(TOKEN, "2000010733434062")).buyer
    assert buyer.complete is False
    assert buyer.doc_number is None


@respx.mock
async def test_missing_billing_info_404_is_incomplete(connector: MercadoLibreConnector) -> None:
    mock_order(mco_order())
    respx.get(f"{API}/orders/billing-info/MCO/{BILLING_ID}").respond(
        404, json={"message": "not found", "error": "not_found", "status": 404, "cause": []}
    )
    order = await connector.fetch_order(TOKEN, "2000010733434062")
    assert order.buyer.complete is False


@respx.mock
async def test_billing_permission_denied_is_raised(connector: MercadoLibreConnector) -> None:
    mock_order(mco_order())
    respx.get(f"{API}/orders/billing-info/MCO/{BILLING_ID}").respond(
        403,
        json={
            "code": "PA_UNAUTHORIZED_RESULT_FROM_POLICIES",
            "status": 403,
            "message": "At least one policy returned UNAUTHORIZED.",
        },
    )
    with pytest.raises(DataError) as caught:
        await connector.fetch_order(TOKEN, "2000010733434062")
    assert caught.value.code == "PA_UNAUTHORIZED_RESULT_FROM_POLICIES"


@respx.mock
async def test_206_without_buyer_skips_billing(connector: MercadoLibreConnector) -> None:
    order = mco_order()
    del order["buyer"]
    mock_order(order, headers={"X-Content-Missing": "buyer"}, status_code=206)
    billing_route = respx.get(f"{API}/orders/billing-info/MCO/{BILLING_ID}").respond(
        json=nit_billing()
    )
    result = await connector.fetch_order(TOKEN, "2000010733434062")
    assert result.buyer.complete is False
    assert not billing_route.called


@respx.mock
async def test_206_without_seller_is_transient(connector: MercadoLibreConnector) -> None:
    order = mco_order()
    del order["seller"]
    mock_order(order, headers={"X-Content-Missing": "seller,feedback"}, status_code=206)
    with pytest.raises(TransientError) as caught:
        await connector.fetch_order(TOKEN, "2000010733434062")
    assert caught.value.code == "partial_content"


@respx.mock
async def test_legacy_billing_shape(connector: MercadoLibreConnector) -> None:
    legacy = {
        "billing_info": {
            "doc_type": "CC",
            "doc_number": "79111222",
            "additional_info": [
                {"type": "FIRST_NAME", "value": "Jorge"},
                {"type": "LAST_NAME", "value": "Pérez"},
                {"type": "CITY_NAME", "value": "Cali"},
            ],
        }
    }
    mock_order(mco_order(), legacy)
    buyer = (await connector.fetch_order(TOKEN, "2000010733434062")).buyer
    assert (buyer.doc_type, buyer.doc_number, buyer.first_name, buyer.last_name) == (
        "CC",
        "79111222",
        "Jorge",
        "Pérez",
    )
    assert buyer.person_type == "person"
    assert buyer.address is not None and buyer.address.city == "Cali"


@respx.mock
@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("paid", OrderStatus.paid),
        ("confirmed", OrderStatus.pending),
        ("payment_required", OrderStatus.pending),
        ("payment_in_process", OrderStatus.pending),
        ("partially_paid", OrderStatus.partially_paid),
        ("cancelled", OrderStatus.cancelled),
        ("invalid", OrderStatus.invalid),
    ],
)
async def test_status_mapping(
    connector: MercadoLibreConnector, raw: str, status: OrderStatus
) -> None:
    mock_order(mco_order(status=raw), cc_billing())
    order = await connector.fetch_order(TOKEN, "2000010733434062")
    assert order.status is status
    assert order.raw_status == raw


@respx.mock
async def test_unknown_status_is_parked(connector: MercadoLibreConnector) -> None:
    mock_order(mco_order(status="shipped"), cc_billing())
    with pytest.raises(DataError) as caught:
        await connector.fetch_order(TOKEN, "2000010733434062")
    assert caught.value.field == "status"


@respx.mock
async def test_shipping_falls_back_to_the_orders_field(connector: MercadoLibreConnector) -> None:
    order = mco_order(status="payment_in_process", shipping_cost=9900)
    for payment in order["payments"]:
        payment["status"] = "in_process"
    mock_order(order, cc_billing())
    assert (await connector.fetch_order(TOKEN, "2000010733434062")).shipping_cost == 9900
    respx.reset()
    order["shipping_cost"] = None
    mock_order(order, cc_billing())
    assert (await connector.fetch_order(TOKEN, "2000010733434062")).shipping_cost == 0


async def test_non_numeric_order_id_never_leaves(connector: MercadoLibreConnector) -> None:
    with respx.mock(assert_all_called=False) as mock:
        with pytest.raises(DataError):
            await connector.fetch_order(TOKEN, "../users/me")
        assert not mock.calls


def test_idempotency_key(connector: MercadoLibreConnector) -> None:
    assert connector.idempotency_key("2000010733434062") == "ML2000010733434062"
    with pytest.raises(DataError):
        connector.idempotency_key("1" * 29)
    with pytest.raises(DataError):
        connector.idempotency_key("12-34")


SECOND_SPELLINGS = [
    "02000010733434062",
    "+2000010733434062",
    " 2000010733434062",
    "2000010733434062\n",
    "\uff12\uff10\uff10\uff10",  # full-width digits
    "0",
    "9223372036854775808",
]


@pytest.mark.parametrize("spelling", SECOND_SPELLINGS)
async def test_a_second_spelling_of_an_order_id_never_leaves_nor_makes_a_key(
    connector: MercadoLibreConnector, spelling: str
) -> None:
    # Mercado Libre answers /orders/0123 with order 123: a second spelling asked for
    # would bring the order back under a second key.
    with respx.mock(assert_all_called=False) as mock:
        with pytest.raises(DataError) as caught:
            await connector.fetch_order(TOKEN, spelling)
        assert caught.value.code == "invalid_order_id"
        assert not mock.calls
    for derive in (connector.idempotency_key, connector.canonical_order_id):
        with pytest.raises(DataError):
            derive(spelling)


def test_an_order_id_is_canonical_as_number_or_as_its_one_spelling() -> None:
    assert map_order(mco_order(id=2000010733434062)).external_id == "2000010733434062"
    assert map_order(mco_order(id="2000010733434062")).external_id == "2000010733434062"
    for bad in ("02000010733434062", 2000010733434062.0, True, -5, 2**63):
        with pytest.raises(DataError):
            map_order(mco_order(id=bad))


def test_order_times_out_of_range_are_no_times() -> None:
    order = map_order(
        mco_order(
            date_created="0001-01-01T00:00:00.000+14:00",
            date_closed="9999-12-31T23:59:59.999-14:00",
            date_last_updated="not a time",
            last_updated="2026-03-02T11:00:00.000-04:00",
        )
    )
    assert order.created_at is None and order.closed_at is None
    assert order.updated_at == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _order(external_id: str) -> Order:
    from connectors.models import BuyerIdentity

    return Order(
        connector="mercadolibre",
        external_id=external_id,
        account_id="1",
        status=OrderStatus.paid,
        raw_status="paid",
        currency="COP",
        lines=[],
        total_amount=Decimal(0),
        buyer=BuyerIdentity(),
    )
