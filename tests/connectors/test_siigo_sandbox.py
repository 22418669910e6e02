"""The Siigo sandbox's rules, spoken to over raw HTTP: headers, auth, rate limits,
idempotency, the invoice validation table, paging and the admin routes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.errors import TransientError
from connectors.siigo import wire
from tests.connectors.siigo_fixtures import PARTNER_ID, SiigoAccount, SiigoSandbox


def code_of(resp: httpx.Response) -> tuple[int, str, list[str]]:
    error = resp.json()["Errors"][0]
    return resp.status_code, error["Code"], error["Params"]


@pytest.fixture
async def account(siigo_sandbox: SiigoSandbox) -> SiigoAccount:
    account = await siigo_sandbox.account()
    await siigo_sandbox.product(account, "SKU-1")
    await siigo_sandbox.product(account, "SKU-5", taxes=("IVA 5%",))
    await siigo_sandbox.product(account, "OLD-1", active=False)
    return account


@pytest.fixture
async def headers(siigo_sandbox: SiigoSandbox, account: SiigoAccount) -> dict[str, str]:
    return await siigo_sandbox.headers(account)


async def customer(
    sandbox: SiigoSandbox, headers: dict[str, str], identification: str = "13832081", **extra: Any
) -> dict[str, Any]:
    body = {
        "person_type": "Person",
        "id_type": "13",
        "identification": identification,
        "name": ["Marcos", "Castillo"],
        "address": {
            "address": "Cra. 18 #79A - 42",
            "city": {"country_code": "CO", "state_code": "11", "city_code": "11001"},
        },
        "contacts": [{"first_name": "Marcos", "last_name": "Castillo", "email": "m@c.co"}],
        **extra,
    }
    resp = await sandbox.http.post("/v1/customers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


def invoice_body(sandbox: SiigoSandbox, account: SiigoAccount, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "document": {"id": int(account.document_type())},
        "date": sandbox.state.today_colombia().isoformat(),
        "customer": {"identification": "13832081", "branch_office": 0},
        "seller": account.company["seller_id"],
        "stamp": {"send": True},
        "mail": {"send": False},
        "items": [
            {
                "code": "SKU-1",
                "description": "Camiseta",
                "quantity": 2,
                "price": 1069.77,
                "taxes": [{"id": int(account.tax_id())}],
            }
        ],
        "payments": [{"id": int(account.payment_type()), "value": 2546.05}],
    }
    body.update(overrides)
    return body


async def post_invoice(
    sandbox: SiigoSandbox, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return await sandbox.http.post(
        "/v1/invoices",
        content=wire.dumps(body),
        headers={**sent, "Content-Type": "application/json"},
    )


# --- headers and auth -------------------------------------------------------------------


async def test_partner_id_is_required_on_data_routes(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    no_partner = {"Authorization": headers["Authorization"]}
    resp = await siigo_sandbox.http.get("/v1/taxes", headers=no_partner)
    assert code_of(resp) == (400, "header_required", ["Partner-Id"])
    assert resp.json()["Status"] == 400
    assert resp.headers["x-request-id"]
    bad = await siigo_sandbox.http.get("/v1/taxes", headers={**no_partner, "Partner-Id": "Mi App!"})
    assert code_of(bad) == (400, "invalid_partner_id", ["Partner-Id"])
    ok = await siigo_sandbox.http.get("/v1/taxes", headers=headers)
    assert ok.status_code == 200


async def test_auth(siigo_sandbox: SiigoSandbox, account: SiigoAccount) -> None:
    good = {
        "username": account.username,
        "access_key": account.credentials.access_key.get_secret_value(),
    }
    resp = await siigo_sandbox.http.post("/auth", json=good)  # no Partner-Id needed
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in"] == 86400
    assert (body["token_type"], body["scope"]) == ("Bearer", "SiigoAPI")
    assert body["access_token"]
    wrong = await siigo_sandbox.http.post("/auth", json={**good, "access_key": "nope"})
    assert code_of(wrong)[:2] == (401, "unauthorized")
    missing = await siigo_sandbox.http.post("/auth", json={"username": account.username})
    assert code_of(missing) == (400, "parameter_required", ["access_key"])


async def test_tokens_are_required_and_expire(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount
) -> None:
    resp = await siigo_sandbox.http.get("/v1/taxes", headers={"Partner-Id": PARTNER_ID})
    assert code_of(resp)[:2] == (401, "unauthorized")
    forged = await siigo_sandbox.http.get(
        "/v1/taxes", headers={"Partner-Id": PARTNER_ID, "Authorization": "Bearer forged"}
    )
    assert forged.status_code == 401
    await siigo_sandbox.configure(token_lifetime_seconds=600)
    headers = await siigo_sandbox.headers(account)
    state = siigo_sandbox.state
    start = state.clock()
    state.clock = lambda: start + 599
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 200
    state.clock = lambda: start + 601
    expired = await siigo_sandbox.http.get("/v1/taxes", headers=headers)
    assert code_of(expired)[:2] == (401, "unauthorized")


async def test_request_id_is_echoed_or_made_up(
    siigo_sandbox: SiigoSandbox, headers: dict[str, str]
) -> None:
    echoed = await siigo_sandbox.http.get(
        "/v1/taxes", headers={**headers, "x-request-id": "abc123"}
    )
    assert echoed.headers["x-request-id"] == "abc123"
    first = await siigo_sandbox.http.get("/v1/taxes", headers=headers)
    second = await siigo_sandbox.http.get("/v1/nothing-here", headers=headers)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert code_of(second)[:2] == (404, "not_found")


# --- rate limit -------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_test_company_gets_10_requests_per_window_without_retry_after(
    siigo_sandbox: SiigoSandbox,
) -> None:
    clock = FakeMonotonic()
    siigo_sandbox.app.state.rate_limit.clock = clock
    account = await siigo_sandbox.account(mode="test")
    headers = await siigo_sandbox.headers(account)
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 200
    clock.now += 10
    for _ in range(9):
        assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 200
    limited = await siigo_sandbox.http.get("/v1/taxes", headers=headers)
    assert code_of(limited)[:2] == (429, "requests_limit")
    assert "retry-after" not in limited.headers
    assert not any(h.startswith("x-ratelimit") for h in limited.headers)
    assert limited.headers["x-request-id"]
    # /auth does not count, and another company has its own window.
    assert (await siigo_sandbox.headers(account))["Authorization"]
    other = await siigo_sandbox.account(mode="test")
    assert (
        await siigo_sandbox.http.get("/v1/taxes", headers=await siigo_sandbox.headers(other))
    ).status_code == 200
    # Sliding: 59 s after the first request still limited; at 60 s its slot frees, only it.
    clock.now += 49
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 429
    clock.now += 1
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 200
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 429


async def test_window_is_configurable_and_production_allows_100(
    siigo_sandbox: SiigoSandbox,
) -> None:
    clock = FakeMonotonic()
    siigo_sandbox.app.state.rate_limit.clock = clock
    await siigo_sandbox.configure(rate_limit={"window_seconds": 5})
    account = await siigo_sandbox.account()
    headers = await siigo_sandbox.headers(account)
    statuses = [
        (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code for _ in range(101)
    ]
    assert statuses == [200] * 100 + [429]
    clock.now += 5
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 200


async def test_connector_sees_the_real_429_as_transient(
    siigo_sandbox: SiigoSandbox,
) -> None:
    siigo_sandbox.app.state.rate_limit.clock = FakeMonotonic()
    account = await siigo_sandbox.account(mode="test")
    connector = siigo_sandbox.connector()
    for _ in range(10):
        await connector.find_product(account.credentials, "X")
    with pytest.raises(TransientError) as caught:
        await connector.find_product(account.credentials, "X")
    assert (caught.value.code, caught.value.status_code) == ("requests_limit", 429)
    assert caught.value.retry_after is None
    assert caught.value.request_id


# --- idempotency ------------------------------------------------------------------------


async def test_same_key_replays_the_first_invoice(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    body = invoice_body(siigo_sandbox, account)
    first = await post_invoice(siigo_sandbox, headers, body, key="ML2000003508419013")
    assert first.status_code == 201, first.text
    again = await post_invoice(siigo_sandbox, headers, body, key="ML2000003508419013")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await post_invoice(siigo_sandbox, headers, body, key="ML2000003508419014")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    stored = await siigo_sandbox.invoices(account)
    assert [s["idempotency_key"] for s in stored] == ["ML2000003508419013", "ML2000003508419014"]
    assert stored[0]["request_body"]["payments"][0]["value"] == 2546.05


async def test_without_a_key_each_post_is_a_new_invoice(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    body = invoice_body(siigo_sandbox, account)
    ids = {(await post_invoice(siigo_sandbox, headers, body)).json()["id"] for _ in range(2)}
    assert len(ids) == 2


@pytest.mark.parametrize("key", ["ML-1", "ML 1", "A" * 31, "clave_1"])
async def test_idempotency_key_format(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str], key: str
) -> None:
    await customer(siigo_sandbox, headers)
    resp = await post_invoice(siigo_sandbox, headers, invoice_body(siigo_sandbox, account), key)
    assert code_of(resp) == (400, "invalid_idempotency-key", ["Idempotency-Key"])
    assert await siigo_sandbox.invoices(account) == []


async def test_concurrent_posts_with_one_key_create_one_invoice(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    await siigo_sandbox.configure(invoice_processing_ms=20)
    body = invoice_body(siigo_sandbox, account)
    answers = await asyncio.gather(
        *(post_invoice(siigo_sandbox, headers, body, key="SAMEKEY1") for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(await siigo_sandbox.invoices(account)) == 1


async def test_timeout_after_commit_then_retry_returns_the_one_invoice(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    await siigo_sandbox.configure(
        timeout_after_commit=[{"route": "POST /v1/invoices"}], hang_seconds=10
    )
    body = invoice_body(siigo_sandbox, account)
    with pytest.raises(httpx.ReadTimeout):
        await siigo_sandbox.http.post(
            "/v1/invoices",
            content=wire.dumps(body),
            timeout=0.3,
            headers={**headers, "Idempotency-Key": "LOST1", "Content-Type": "application/json"},
        )
    stored = await siigo_sandbox.invoices(account)
    assert len(stored) == 1
    retry = await post_invoice(siigo_sandbox, headers, body, key="LOST1")
    assert retry.status_code == 200
    assert retry.json()["id"] == stored[0]["invoice"]["id"]
    assert len(await siigo_sandbox.invoices(account)) == 1


# --- invoice rules ----------------------------------------------------------------------


async def test_created_invoice_shape_and_numbering(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    first = await post_invoice(siigo_sandbox, headers, invoice_body(siigo_sandbox, account))
    assert first.status_code == 201
    assert '"total":2546.05' in first.text and '"value":406.51' in first.text
    data = first.json()
    assert (data["name"], data["number"]) == ("FV-1-1", 1)
    assert data["stamp"]["status"] == "Accepted" and data["stamp"]["cufe"]
    assert data["items"][0]["taxes"][0]["name"] == "IVA 19%"
    assert data["payments"][0]["name"] == "Efectivo"
    assert data["metadata"]["created"].endswith("Z")
    draft = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, stamp={"send": False})
    )
    assert (draft.json()["name"], draft.json()["stamp"]["status"]) == ("FV-1-2", "Draft")
    plain = await post_invoice(
        siigo_sandbox,
        headers,
        invoice_body(
            siigo_sandbox,
            account,
            document={"id": int(account.document_type("2"))},
            stamp={"send": False},
        ),
    )
    assert plain.json()["name"] == "FV-2-1"
    fetched = await siigo_sandbox.http.get(f"/v1/invoices/{data['id']}", headers=headers)
    assert fetched.json() == data
    missing = await siigo_sandbox.http.get("/v1/invoices/nope", headers=headers)
    assert code_of(missing)[:2] == (404, "not_found")


async def test_payments_must_match_siigos_total(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    payment = {"id": int(account.payment_type()), "value": Decimal("2546.06")}
    resp = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, payments=[payment])
    )
    assert code_of(resp) == (400, "invalid_total_payments", ["payments"])
    assert "The total invoice calculated is 2546.05" in resp.json()["Errors"][0]["Message"]
    split = [
        {"id": int(account.payment_type()), "value": Decimal("2000.00")},
        {"id": int(account.payment_type("Tarjeta débito")), "value": Decimal("546.05")},
    ]
    ok = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, payments=split)
    )
    assert ok.status_code == 201, ok.text


async def test_invoice_date_uses_colombias_today(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    # 03:00 UTC on 2 January is 22:00 on 1 January in Bogotá.
    moment = datetime(2031, 1, 2, 3, 0, tzinfo=UTC).timestamp()
    siigo_sandbox.state.clock = lambda: moment
    headers = await siigo_sandbox.headers(account)  # tokens follow the sandbox clock
    ok = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, date="2031-01-01")
    )
    assert ok.status_code == 201, ok.text
    late = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, date="2030-12-31")
    )
    assert code_of(late) == (400, "invalid_date", ["date"])
    assert "2031-01-01" in late.json()["Errors"][0]["Message"]
    non_electronic = invoice_body(
        siigo_sandbox,
        account,
        date="2030-12-31",
        stamp={"send": False},
        document={"id": int(account.document_type("2"))},
    )
    assert (await post_invoice(siigo_sandbox, headers, non_electronic)).status_code == 201
    bad_format = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, date="01/01/2031")
    )
    assert code_of(bad_format) == (400, "invalid_date", ["date"])


def item(account: SiigoAccount, **overrides: Any) -> dict[str, Any]:
    return {
        "code": "SKU-1",
        "quantity": 1,
        "price": 100,
        "taxes": [{"id": int(account.tax_id())}],
        **overrides,
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: {"document": {"id": 1}}, ("invalid_reference", ["document.id"])),
        (lambda a: {"document": {}}, ("parameter_required", ["document.id"])),
        (lambda a: {"date": None}, ("parameter_required", ["date"])),
        (
            lambda a: {"customer": {"identification": "999"}},
            ("invalid_reference", ["customer.identification"]),
        ),
        (lambda a: {"seller": None}, ("parameter_required", ["seller"])),
        (lambda a: {"seller": 1}, ("invalid_reference", ["seller"])),
        (
            lambda a: {"seller": next(u["id"] for u in a.company["users"] if not u["active"])},
            ("parameter_inactive", ["seller"]),
        ),
        (lambda a: {"items": []}, ("parameter_required", ["items"])),
        (lambda a: {"items": [item(a, code="NOPE")]}, ("invalid_reference", ["items.code"])),
        (lambda a: {"items": [item(a, code="OLD-1")]}, ("parameter_inactive", ["items.code"])),
        (lambda a: {"items": [item(a)] * 501}, ("invalid_array", ["items"])),
        (
            lambda a: {"items": [item(a, quantity=Decimal("1.005"))]},
            ("invalid_value", ["items.quantity"]),
        ),
        (
            lambda a: {"items": [item(a, price=Decimal("1.0000001"))]},
            ("invalid_amount", ["items.price"]),
        ),
        (lambda a: {"items": [item(a, price="100")]}, ("invalid_type", ["items.price"])),
        (
            lambda a: {"items": [item(a, taxes=[{"id": 1}])]},
            ("invalid_reference", ["items.taxes.id"]),
        ),
        (
            lambda a: {"items": [item(a, taxes=[{"id": int(a.tax_id("ReteIVA 15%"))}])]},
            ("invalid_array", ["items.taxes"]),
        ),
        (
            lambda a: {
                "items": [item(a, taxes=[{"id": int(a.tax_id())}, {"id": int(a.tax_id("IVA 5%"))}])]
            },
            ("invalid_array", ["items.taxes"]),
        ),
        (lambda a: {"payments": []}, ("parameter_required", ["payments"])),
        (lambda a: {"payments": [{"id": 1, "value": 119}]}, ("invalid_reference", ["payments.id"])),
        (
            lambda a: {"payments": [{"id": int(a.payment_type()), "value": Decimal("119.001")}]},
            ("invalid_amount", ["payments.value"]),
        ),
        (
            lambda a: {"payments": [{"id": int(a.payment_type("Crédito")), "value": 119}]},
            ("parameter_required", ["payments.due_date"]),
        ),
        (lambda a: {"observations": "x" * 4001}, ("length_max", ["observations"])),
        (
            lambda a: {"currency": {"code": "USD", "exchange_rate": 4000}},
            ("invalid_currency", ["currency"]),
        ),
    ],
)
async def test_invoice_validation(
    siigo_sandbox: SiigoSandbox,
    account: SiigoAccount,
    headers: dict[str, str],
    change: Any,
    expected: tuple[str, list[str]],
) -> None:
    await customer(siigo_sandbox, headers)
    body = invoice_body(
        siigo_sandbox,
        account,
        items=[item(account)],
        payments=[{"id": int(account.payment_type()), "value": 119}],
    )
    assert (await post_invoice(siigo_sandbox, headers, body)).status_code == 201
    body.update(change(account))
    resp = await post_invoice(siigo_sandbox, headers, body)
    assert code_of(resp) == (400, *expected)
    assert len(await siigo_sandbox.invoices(account)) == 1


async def test_credit_payment_needs_a_due_date_and_stands_alone(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    today = siigo_sandbox.state.today_colombia()
    due = (today + timedelta(days=30)).isoformat()
    credit = {"id": int(account.payment_type("Crédito")), "value": 119, "due_date": due}
    base = {"items": [item(account)]}
    ok = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, payments=[credit], **base)
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["payments"][0]["due_date"] == due
    split = [{**credit, "value": 100}, {"id": int(account.payment_type()), "value": 19}]
    resp = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, payments=split, **base)
    )
    assert code_of(resp) == (400, "invalid_payment", ["payments"])


async def test_customer_state_rules(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    created = await customer(siigo_sandbox, headers)
    body = invoice_body(siigo_sandbox, account)
    await siigo_sandbox.http.patch(f"/_sandbox/customers/{created['id']}", json={"contacts": []})
    resp = await post_invoice(siigo_sandbox, headers, body)
    assert code_of(resp) == (400, "customer_settings", ["customer.identification"])
    await siigo_sandbox.http.patch(
        f"/_sandbox/customers/{created['id']}",
        json={"active": False, "contacts": [{"first_name": "M"}]},
    )
    resp = await post_invoice(siigo_sandbox, headers, body)
    assert code_of(resp) == (400, "parameter_inactive", ["customer.identification"])


async def test_customer_sent_inline_is_created_with_the_invoice(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    inline = {
        "person_type": "Person",
        "id_type": "13",
        "identification": "209048401",
        "branch_office": "0",
        "name": ["Manuel", "Camacho"],
        "address": {
            "address": "Cra. 18 #79A - 42",
            "city": {"country_code": "Co", "state_code": "11", "city_code": "11001"},
        },
        "phones": [{"number": "3006003344"}],
        "contacts": [
            {"first_name": "Manuel", "last_name": "Camacho", "email": "manuel.camacho@contacto.com"}
        ],
    }
    resp = await post_invoice(
        siigo_sandbox, headers, invoice_body(siigo_sandbox, account, customer=inline)
    )
    assert resp.status_code == 201, resp.text
    customers = await siigo_sandbox.customers(account)
    assert [c["identification"] for c in customers] == ["209048401"]
    assert resp.json()["customer"]["id"] == customers[0]["id"]


async def test_taxed_price_backs_out_the_base(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    line = {
        "code": "SKU-1",
        "quantity": 1,
        "taxed_price": 10000,
        "taxes": [{"id": int(account.tax_id())}],
    }
    resp = await post_invoice(
        siigo_sandbox,
        headers,
        invoice_body(
            siigo_sandbox,
            account,
            items=[line],
            payments=[{"id": int(account.payment_type()), "value": 10000}],
        ),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["items"][0]["taxes"][0]["value"] == 1596.64


# --- customers, products, catalogs ------------------------------------------------------


async def test_customer_creation_rules(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    created = await customer(siigo_sandbox, headers)
    assert created["id_type"] == {"code": "13", "name": "Cédula de ciudadanía"}
    assert created["address"]["city"]["city_name"] == "Bogotá"
    assert created["fiscal_responsibilities"] == [{"code": "R-99-PN", "name": "No aplica - Otros"}]
    base = {
        "person_type": "Person",
        "id_type": "13",
        "identification": "52000111",
        "name": ["Ana", "Ruiz"],
        "address": {
            "address": "Calle 1",
            "city": {"country_code": "CO", "state_code": "11", "city_code": "11001"},
        },
        "contacts": [{"first_name": "Ana"}],
    }
    cases: list[tuple[dict[str, Any], tuple[str, list[str]]]] = [
        ({"identification": "13832081"}, ("already_exists", ["identification"])),
        ({"contacts": []}, ("parameter_required", ["contacts"])),
        ({"contacts": [{"first_name": "A"}] * 11}, ("invalid_array", ["contacts"])),
        ({"name": ["Ana Ruiz"]}, ("invalid_array", ["name"])),
        ({"identification": "12AB"}, ("invalid_identification", ["identification"])),
        ({"id_type": "99"}, ("invalid_reference", ["id_type"])),
        ({"person_type": "Alien"}, ("invalid_type", ["person_type"])),
        ({"address": {"address": "Calle 1"}}, ("parameter_required", ["address.city"])),
        (
            {"contacts": [{"first_name": "A", "email": "no-at-sign"}]},
            ("invalid_email", ["contacts.email"]),
        ),
    ]
    for change, expected in cases:
        resp = await siigo_sandbox.http.post(
            "/v1/customers", json={**base, **change}, headers=headers
        )
        assert code_of(resp) == (400, *expected), change
    assert len(await siigo_sandbox.customers(account)) == 1


async def test_customer_search(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    created = await customer(siigo_sandbox, headers)
    await customer(siigo_sandbox, headers, identification="13832081", branch_office=1)
    found = await siigo_sandbox.http.get(
        "/v1/customers",
        params={"identification": "13832081", "branch_office": 0},
        headers=headers,
    )
    assert [c["id"] for c in found.json()["results"]] == [created["id"]]
    none = await siigo_sandbox.http.get(
        "/v1/customers", params={"identification": "1"}, headers=headers
    )
    assert none.json()["results"] == [] and none.json()["pagination"]["total_results"] == 0
    one = await siigo_sandbox.http.get(f"/v1/customers/{created['id']}", headers=headers)
    assert one.json()["identification"] == "13832081"


async def test_products_and_catalogs(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    products = await siigo_sandbox.http.get(
        "/v1/products", params={"code": "SKU-5"}, headers=headers
    )
    [product] = products.json()["results"]
    assert product["taxes"][0]["percentage"] == 5
    docs = await siigo_sandbox.http.get(
        "/v1/document-types", params={"type": "FV"}, headers=headers
    )
    assert isinstance(docs.json(), list) and len(docs.json()) == 2
    assert {d["electronic_type"] for d in docs.json()} == {"ElectronicInvoice", "NoElectronic"}
    no_type = await siigo_sandbox.http.get("/v1/document-types", headers=headers)
    assert code_of(no_type) == (400, "parameter_required", ["type"])
    pays = await siigo_sandbox.http.get("/v1/payment-types", headers=headers)
    assert code_of(pays) == (400, "parameter_required", ["document_type"])
    pays = await siigo_sandbox.http.get(
        "/v1/payment-types", params={"document_type": "FV"}, headers=headers
    )
    assert {p["name"] for p in pays.json()} >= {"Efectivo", "Crédito"}
    taxes = (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).json()
    assert {(t["name"], t["percentage"]) for t in taxes} >= {("IVA 19%", 19), ("IVA 5%", 5)}
    users = (await siigo_sandbox.http.get("/v1/users", headers=headers)).json()
    assert users["pagination"]["total_results"] == 2


async def test_connector_catalogs_against_the_sandbox(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount
) -> None:
    catalogs = await siigo_sandbox.connector().catalogs(account.credentials)
    assert {str(d.id) for d in catalogs.document_types} == {
        account.document_type("1"),
        account.document_type("2"),
    }
    assert catalogs.tax_percentages()[account.tax_id()] == Decimal(19)
    assert any(u.id == account.company["seller_id"] and u.active for u in catalogs.users)


# --- listing ----------------------------------------------------------------------------


async def test_invoice_list_paging_and_filters(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    body = invoice_body(siigo_sandbox, account)
    for _ in range(12):
        assert (await post_invoice(siigo_sandbox, headers, body)).status_code == 201
    today = siigo_sandbox.state.today_colombia().isoformat()

    async def page(**params: Any) -> dict[str, Any]:
        resp = await siigo_sandbox.http.get("/v1/invoices", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    default = await page()
    assert default["pagination"] == {"page": 1, "page_size": 25, "total_results": 12}
    assert "next" not in default["_links"] and "previous" not in default["_links"]
    small = await page(page_size=3)  # raised to the minimum of 10
    assert small["pagination"]["page_size"] == 10 and len(small["results"]) == 10
    assert "page=2" in small["_links"]["next"]["href"]
    second = await page(page=2, page_size=10)
    assert len(second["results"]) == 2 and "page=1" in second["_links"]["previous"]["href"]
    assert (await page(page_size=1000))["pagination"]["page_size"] == 100
    names = [i["name"] for i in default["results"]]
    assert names == [f"FV-1-{n}" for n in range(1, 13)]
    assert (await page(date_start=today, date_end=today))["pagination"]["total_results"] == 12
    assert (await page(date_end="2000-01-01"))["results"] == []
    assert (await page(name="FV-1-3"))["results"][0]["number"] == 3
    assert (await page(customer_identification="1"))["results"] == []
    created = default["results"][0]["metadata"]["created"]
    assert (await page(created_start=created[:10]))["pagination"]["total_results"] == 12
    assert (await page(created_start="2999-01-01T00:00:00Z"))["results"] == []
    bad = await siigo_sandbox.http.get(
        "/v1/invoices", params={"date_start": "ayer"}, headers=headers
    )
    assert code_of(bad) == (400, "invalid_date", ["date_start"])


async def test_connector_pages_through_the_sandbox(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    body = invoice_body(siigo_sandbox, account)
    for _ in range(23):
        await post_invoice(siigo_sandbox, headers, body)
    today = siigo_sandbox.state.today_colombia()
    connector = siigo_sandbox.connector(page_size=10)
    listed = [i async for i in connector.list_invoices(account.credentials, today, today)]
    assert [i.number for i in listed] == list(range(1, 24))
    pages = [e["query"] for e in await siigo_sandbox.requests(path="/v1/invoices", method="GET")]
    assert len(pages) == 3 and all("page_size=10" in q for q in pages)


# --- admin routes and knobs -------------------------------------------------------------


async def test_admin_edit_and_delete_behind_the_products_back(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await customer(siigo_sandbox, headers)
    created = (
        await post_invoice(siigo_sandbox, headers, invoice_body(siigo_sandbox, account), "DEL1")
    ).json()
    edited = await siigo_sandbox.http.patch(
        f"/_sandbox/invoices/{created['id']}", json={"stamp": {"status": "Rejected"}}
    )
    assert edited.json()["stamp"]["status"] == "Rejected"
    assert edited.json()["stamp"]["cufe"] == created["stamp"]["cufe"]
    got = await siigo_sandbox.http.get(f"/v1/invoices/{created['id']}", headers=headers)
    assert got.json()["stamp"]["status"] == "Rejected"
    assert got.json()["metadata"]["last_updated"]
    deleted = await siigo_sandbox.http.delete(f"/_sandbox/invoices/{created['id']}")
    assert deleted.json() == {"id": created["id"], "deleted": True}
    gone = await siigo_sandbox.http.get(f"/v1/invoices/{created['id']}", headers=headers)
    assert gone.status_code == 404
    assert await siigo_sandbox.invoices(account) == []
    again = await siigo_sandbox.http.delete(f"/_sandbox/invoices/{created['id']}")
    assert again.status_code == 404


async def test_admin_validation(siigo_sandbox: SiigoSandbox, account: SiigoAccount) -> None:
    dup = await siigo_sandbox.http.post(
        "/_sandbox/companies", json={"username": account.username, "access_key": "x"}
    )
    assert code_of(dup)[:2] == (409, "already_exists")
    bad_mode = await siigo_sandbox.http.post(
        "/_sandbox/companies", json={"username": "z@z.co", "access_key": "x", "mode": "beta"}
    )
    assert bad_mode.status_code == 400
    no_company = await siigo_sandbox.http.post(
        "/_sandbox/products", json={"company": "nobody", "code": "A", "name": "A"}
    )
    assert no_company.status_code == 404
    bad_code = await siigo_sandbox.http.post(
        "/_sandbox/products", json={"company": account.username, "code": "A B", "name": "A"}
    )
    assert code_of(bad_code)[:2] == (400, "invalid_code")
    summary = account.company
    assert summary["document_type_id"] == int(account.document_type("1"))
    assert {"IVA 19%", "IVA 5%"} <= set(summary["tax_ids"])
    assert summary["mode"] == "production"


@pytest.mark.parametrize(
    ("knob", "status", "code"),
    [
        ({"outage": "503"}, 503, "service_unavailable"),
        ({"fail_next": [{"route": "GET /v1/taxes", "status": 500}]}, 500, "unhandled_error"),
        ({"fail_next": [{"route": "/v1/*", "status": 429}]}, 429, "requests_limit"),
        ({"error_rate": {"GET /v1/taxes": 1.0}}, 500, "unhandled_error"),
    ],
)
async def test_kit_knobs_speak_siigo(
    siigo_sandbox: SiigoSandbox,
    headers: dict[str, str],
    knob: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await siigo_sandbox.configure(**knob)
    resp = await siigo_sandbox.http.get("/v1/taxes", headers=headers)
    assert code_of(resp)[:2] == (status, code)
    assert resp.headers["x-request-id"]
    log = await siigo_sandbox.requests(path="/v1/taxes")
    assert log[-1]["status"] == status and log[-1].get("fault")


async def test_reset_forgets_everything(
    siigo_sandbox: SiigoSandbox, account: SiigoAccount, headers: dict[str, str]
) -> None:
    await siigo_sandbox.configure(token_lifetime_seconds=5)
    assert (await siigo_sandbox.http.post("/_sandbox/reset")).status_code == 200
    assert (await siigo_sandbox.http.get("/_sandbox/companies")).json() == []
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=headers)).status_code == 401
    config = (await siigo_sandbox.http.get("/_sandbox/config")).json()
    assert config["token_lifetime_seconds"] == 86400
