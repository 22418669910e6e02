"""Connector behaviour against respx: OAuth URLs, order mapping, billing info, search."""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from connectors.base import NoLimit
from connectors.errors import AuthError, DataError, TransientError
from connectors.mercadolibre import MercadoLibreConnector, factory
from connectors.mercadolibre.mapping import map_order
from connectors.models import Order, OrderStatus
from tests.connectors.mercadolibre.fixtures import CLIENT_ID, REDIRECT_URI, ml_settings

API = "https://api.mercadolibre.com"
TOKEN = "APP_USR-test-token"
BILLING_ID = "677487519924852462"


def mco_order(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": 2000010733434062,
        "status": "paid",
        "status_detail": None,
        "date_created": "2026-03-02T10:01:50.000-04:00",
        "date_closed": "2026-03-02T10:04:07.000-04:00",
        "last_updated": "2026-03-02T11:00:00.000-04:00",
        "date_last_updated": "2026-03-02T15:00:00.120Z",
        "pack_id": 2000004455667788,
        "order_items": [
            {
                "item": {
                    "id": "MCO1054990648",
                    "title": "Audífonos Bluetooth",
                    "variation_id": 174000111222,
                    "seller_sku": "AUD-BT-500",
                    "seller_custom_field": "OLD-CODE",
                },
                "quantity": 2,
                "unit_price": 80910,
                "full_unit_price": 89900,
                "currency_id": "COP",
            },
            {
                "item": {
                    "id": "MCO2000000001",
                    "title": "Cargador USB-C",
                    "variation_id": None,
                    "seller_sku": None,
                    "seller_custom_field": "CAR-USBC-20W",
                },
                "quantity": 1,
                "unit_price": 39900.5,
                "full_unit_price": None,
                "currency_id": "COP",
            },
        ],
        "total_amount": 201720.5,
        "paid_amount": 214620.5,
        "shipping_cost": None,
        "currency_id": "COP",
        "buyer": {"id": 2212631646, "billing_info": {"id": BILLING_ID}},
        "seller": {"id": 468424240},
        "payments": [
            {
                "id": 4792155710,
                "status": "approved",
                "transaction_amount": 201720.5,
                "shipping_cost": 12900,
                "payment_method_id": "pse",
                "date_approved": "2026-03-02T10:04:07.000-04:00",
            },
            {
                "id": 4792155711,
                "status": "rejected",
                "transaction_amount": 201720.5,
                "shipping_cost": 12900,
                "payment_method_id": "visa",
                "date_approved": None,
            },
        ],
        "context": {"channel": "marketplace", "site": "MCO", "flows": []},
        "tags": ["paid", "not_delivered"],
    }
    order.update(changes)
    return order


def nit_billing() -> dict[str, Any]:
    return {
        "site_id": "MCO",
        "buyer": {
            "cust_id": 2212631646,
            "billing_info": {
                "name": "Distribuciones Andina S.A.S.",
                "last_name": "",
                "identification": {"type": "NIT", "number": "900123456"},
                "address": {
                    "street_name": "Calle 100",
                    "street_number": "# 15-20",
                    "city_name": "Bogotá D.C.",
                    "state": {"name": "Bogotá D.C."},
                    "zip_code": "110111",
                },
                "attributes": {"cust_type": "BU"},
            },
        },
    }


def cc_billing() -> dict[str, Any]:
    return {
        "site_id": "MCO",
        "buyer": {
            "cust_id": 2212631646,
            "billing_info": {
                "name": "Laura",
                "last_name": "Gómez Rojas",
                "identification": {"type": "CC", "number": "1020304050"},
                "address": {
                    "street_name": "Carrera 7",
                    "street_number": "# 45-10",
                    "city_name": "Medellín",
                    "state": {"name": "Antioquia"},
                },
                "attributes": {"cust_type": "CO"},
            },
        },
    }


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def connector(http: httpx.AsyncClient) -> MercadoLibreConnector:
    settings = ml_settings(api_url=API, auth_url="https://auth.mercadolibre.com.co")
    return factory(http, settings, NoLimit())


def mock_order(order: dict[str, Any], billing: dict[str, Any] | None = None, **kw: Any) -> None:
    respx.get(f"{API}/orders/{order['id']}").respond(json=order, **kw)
    if billing is not None:
        respx.get(f"{API}/orders/billing-info/MCO/{BILLING_ID}").respond(json=billing)


# --- OAuth ---------------------------------------------------------------------------------


def test_authorization_url_uses_the_sites_host_and_pkce_s256(
    connector: MercadoLibreConnector,
) -> None:
    request = connector.authorization_request(state="abc")
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "auth.mercadolibre.com.co",
        "/authorization",
    )
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["state"] == "abc"
    assert query["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(request.code_verifier) <= 128
    other = connector.authorization_request(state="abc")
    assert other.code_verifier != request.code_verifier

    assert urlsplit(connector.authorization_request(state="s", site="MLB").url).netloc == (
        "auth.mercadolivre.com.br"
    )
    assert urlsplit(connector.authorization_request(state="s", site="mlc").url).netloc == (
        "auth.mercadolibre.cl"
    )
    with pytest.raises(DataError):
        connector.authorization_request(state="s", site="XXX")


def test_authorization_url_keeps_a_sandbox_base(http: httpx.AsyncClient) -> None:
    connector = factory(http, ml_settings(auth_url="http://127.0.0.1:8101/"), NoLimit())
    url = connector.authorization_request(state="s", site="MLM").url
    assert url.startswith("http://127.0.0.1:8101/authorization?")


@respx.mock
async def test_exchange_and_refresh_send_form_bodies(connector: MercadoLibreConnector) -> None:
    answer = {
        "access_token": "APP_USR-new",
        "token_type": "bearer",
        "expires_in": 21600,
        "scope": "offline_access read write",
        "user_id": 468424240,
        "refresh_token": "TG-new-468424240",
    }
    route = respx.post(f"{API}/oauth/token").respond(json=answer)
    before = datetime.now(UTC)
    tokens = await connector.exchange_code("TG-code-468424240", "verifier-123")
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent == {
        "grant_type": ["authorization_code"],
        "code": ["TG-code-468424240"],
        "redirect_uri": [REDIRECT_URI],
        "code_verifier": ["verifier-123"],
        "client_id": [CLIENT_ID],
        "client_secret": ["sandbox-secret-not-real"],
    }
    assert tokens.account_id == "468424240"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "TG-new-468424240"
    assert before + timedelta(seconds=21600) <= tokens.expires_at
    assert tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=21600)

    refreshed = await connector.refresh("TG-old")
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent["grant_type"] == ["refresh_token"]
    assert sent["refresh_token"] == ["TG-old"]
    assert refreshed.access_token.get_secret_value() == "APP_USR-new"


@respx.mock
async def test_lost_refresh_race_is_invalid_grant(connector: MercadoLibreConnector) -> None:
    respx.post(f"{API}/oauth/token").respond(
        400,
        json={
            "error_description": "Error validating grant. Your authorization code or refresh "
            "token may be expired or it was already used",
            "error": "invalid_grant",
            "status": 400,
            "cause": [],
        },
    )
    with pytest.raises(AuthError) as caught:
        await connector.refresh("TG-used")
    assert caught.value.code == "invalid_grant"


@respx.mock
async def test_profile(connector: MercadoLibreConnector) -> None:
    respx.get(f"{API}/users/me").respond(
        json={"id": 468424240, "nickname": "TIENDA", "site_id": "MCO"}
    )
    profile = await connector.get_profile(TOKEN)
    assert (profile.account_id, profile.nickname, profile.site) == ("468424240", "TIENDA", "MCO")


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


# --- search --------------------------------------------------------------------------------


def _page(orders: list[dict[str, Any]], total: int, offset: int) -> dict[str, Any]:
    return {
        "results": orders,
        "paging": {"total": total, "offset": offset, "limit": 50},
        "sort": {"id": "date_asc"},
        "filters": [],
        "display": "complete",
    }


@respx.mock
async def test_search_pages_widens_to_hours_and_trims(connector: MercadoLibreConnector) -> None:
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    end = datetime(2026, 3, 2, 16, 10, tzinfo=UTC)
    inside = [
        mco_order(id=3000 + i, date_last_updated=f"2026-03-02T15:{i % 60:02d}:00.000Z")
        for i in range(60)
    ]
    # Before the window but in the same hour: Mercado Libre returns it, the connector drops it.
    early = mco_order(id=2999, date_last_updated="2026-03-02T14:05:00.000Z")
    cancelled = mco_order(id=4000, status="cancelled", date_last_updated="2026-03-02T16:00:00.000Z")
    everything = [early, *inside]
    calls: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append(params)
        offset, limit = int(params["offset"]), int(params["limit"])
        if params.get("order.status") == "cancelled":
            return httpx.Response(200, json=_page([cancelled][offset : offset + limit], 1, offset))
        chunk = everything[offset : offset + limit]
        return httpx.Response(200, json=_page(chunk, len(everything), offset))

    respx.get(f"{API}/orders/search").mock(side_effect=answer)
    found = [o async for o in connector.search_orders(TOKEN, "468424240", start, end)]
    assert [o.external_id for o in found] == [str(o["id"]) for o in inside] + ["4000"]
    assert all(o.buyer.complete is False for o in found)
    first = calls[0]
    assert first["seller"] == "468424240"
    assert first["order.date_last_updated.from"] == "2026-03-02T14:00:00.000-00:00"
    assert first["order.date_last_updated.to"] == "2026-03-02T17:00:00.000-00:00"
    assert first["limit"] == "50"
    assert [c["offset"] for c in calls] == ["0", "50", "0"]
    assert calls[-1]["order.status"] == "cancelled"


async def test_search_refuses_naive_times(connector: MercadoLibreConnector) -> None:
    with pytest.raises(ValueError):
        async for _ in connector.search_orders(
            TOKEN,
            "1",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
        ):
            pass


@respx.mock
async def test_search_does_not_yield_an_order_twice(connector: MercadoLibreConnector) -> None:
    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    end = start + timedelta(hours=3)
    one = mco_order(id=5000, date_last_updated="2026-03-02T15:00:00.000Z")
    # The same order on both passes (a search that does not hide cancelled orders).
    respx.get(f"{API}/orders/search").respond(json=_page([copy.deepcopy(one)], 1, 0))
    found = [o.external_id async for o in connector.search_orders(TOKEN, "1", start, end)]
    assert found == ["5000"]


def test_the_fraud_tag_becomes_the_canonical_fraud_flag() -> None:
    assert map_order(mco_order(tags=["paid", "fraud_risk_detected"])).fraud_suspected
    assert not map_order(mco_order(tags=["paid"])).fraud_suspected
