"""The Siigo sandbox's invoices over raw HTTP: idempotency, the "Crear Factura" rules,
numbering and stamping, and listing with paging and filters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.siigo import wire
from tests.connectors.siigo.fixtures import (
    SiigoAccount,
    SiigoSandbox,
    code_of,
    post_invoice,
    raw_invoice,
    seed_customer,
)

# --- idempotency ------------------------------------------------------------------------


async def test_same_key_replays_the_first_invoice(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(siigo_sandbox, siigo_account)
    first = await post_invoice(siigo_sandbox, siigo_headers, body, key="ML2000003508419013")
    assert first.status_code == 201, first.text
    again = await post_invoice(siigo_sandbox, siigo_headers, body, key="ML2000003508419013")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await post_invoice(siigo_sandbox, siigo_headers, body, key="ML2000003508419014")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    stored = await siigo_sandbox.invoices(siigo_account)
    assert [s["idempotency_key"] for s in stored] == ["ML2000003508419013", "ML2000003508419014"]
    assert stored[0]["request_body"]["payments"][0]["value"] == 2546.05


async def test_without_a_key_each_post_is_a_new_invoice(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(siigo_sandbox, siigo_account)
    ids = {(await post_invoice(siigo_sandbox, siigo_headers, body)).json()["id"] for _ in range(2)}
    assert len(ids) == 2


@pytest.mark.parametrize("key", ["ML-1", "ML 1", "A" * 31, "clave_1"])
async def test_idempotency_key_format(
    siigo_sandbox: SiigoSandbox,
    siigo_account: SiigoAccount,
    siigo_headers: dict[str, str],
    key: str,
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    resp = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account), key
    )
    assert code_of(resp) == (400, "invalid_idempotency-key", ["Idempotency-Key"])
    assert await siigo_sandbox.invoices(siigo_account) == []


async def test_concurrent_posts_with_one_key_create_one_invoice(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    await siigo_sandbox.configure(invoice_processing_ms=20)
    body = raw_invoice(siigo_sandbox, siigo_account)
    answers = await asyncio.gather(
        *(post_invoice(siigo_sandbox, siigo_headers, body, key="SAMEKEY1") for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(await siigo_sandbox.invoices(siigo_account)) == 1


async def test_timeout_after_commit_then_retry_returns_the_one_invoice(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    await siigo_sandbox.configure(
        timeout_after_commit=[{"route": "POST /v1/invoices"}], hang_seconds=10
    )
    body = raw_invoice(siigo_sandbox, siigo_account)
    with pytest.raises(httpx.ReadTimeout):
        await siigo_sandbox.http.post(
            "/v1/invoices",
            content=wire.dumps(body),
            timeout=0.3,
            headers={
                **siigo_headers,
                "Idempotency-Key": "LOST1",
                "Content-Type": "application/json",
            },
        )
    stored = await siigo_sandbox.invoices(siigo_account)
    assert len(stored) == 1
    retry = await post_invoice(siigo_sandbox, siigo_headers, body, key="LOST1")
    assert retry.status_code == 200
    assert retry.json()["id"] == stored[0]["invoice"]["id"]
    assert len(await siigo_sandbox.invoices(siigo_account)) == 1


# --- invoice rules ----------------------------------------------------------------------


async def test_created_invoice_shape_and_numbering(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    first = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account)
    )
    assert first.status_code == 201
    assert '"total":2546.05' in first.text and '"value":406.51' in first.text
    data = first.json()
    assert (data["name"], data["number"]) == ("FV-1-1", 1)
    assert data["stamp"]["status"] == "Accepted" and data["stamp"]["cufe"]
    assert data["items"][0]["taxes"][0]["name"] == "IVA 19%"
    assert data["payments"][0]["name"] == "Efectivo"
    assert data["metadata"]["created"].endswith("Z")
    draft = await post_invoice(
        siigo_sandbox,
        siigo_headers,
        raw_invoice(siigo_sandbox, siigo_account, stamp={"send": False}),
    )
    assert (draft.json()["name"], draft.json()["stamp"]["status"]) == ("FV-1-2", "Draft")
    plain = await post_invoice(
        siigo_sandbox,
        siigo_headers,
        raw_invoice(
            siigo_sandbox,
            siigo_account,
            document={"id": int(siigo_account.document_type("2"))},
            stamp={"send": False},
        ),
    )
    assert plain.json()["name"] == "FV-2-1"
    fetched = await siigo_sandbox.http.get(f"/v1/invoices/{data['id']}", headers=siigo_headers)
    assert fetched.json() == data
    missing = await siigo_sandbox.http.get("/v1/invoices/nope", headers=siigo_headers)
    assert code_of(missing)[:2] == (404, "not_found")


async def test_payments_must_match_siigos_total(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    payment = {"id": int(siigo_account.payment_type()), "value": Decimal("2546.06")}
    resp = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, payments=[payment])
    )
    assert code_of(resp) == (400, "invalid_total_payments", ["payments"])
    assert "The total invoice calculated is 2546.05" in resp.json()["Errors"][0]["Message"]
    split = [
        {"id": int(siigo_account.payment_type()), "value": Decimal("2000.00")},
        {"id": int(siigo_account.payment_type("Tarjeta débito")), "value": Decimal("546.05")},
    ]
    ok = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, payments=split)
    )
    assert ok.status_code == 201, ok.text


async def test_invoice_date_uses_colombias_today(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    # 03:00 UTC on 2 January is 22:00 on 1 January in Bogotá.
    moment = datetime(2031, 1, 2, 3, 0, tzinfo=UTC).timestamp()
    siigo_sandbox.state.clock = lambda: moment
    siigo_headers = await siigo_sandbox.headers(siigo_account)  # tokens follow the sandbox clock
    ok = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, date="2031-01-01")
    )
    assert ok.status_code == 201, ok.text
    late = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, date="2030-12-31")
    )
    assert code_of(late) == (400, "invalid_date", ["date"])
    assert "2031-01-01" in late.json()["Errors"][0]["Message"]
    non_electronic = raw_invoice(
        siigo_sandbox,
        siigo_account,
        date="2030-12-31",
        stamp={"send": False},
        document={"id": int(siigo_account.document_type("2"))},
    )
    assert (await post_invoice(siigo_sandbox, siigo_headers, non_electronic)).status_code == 201
    bad_format = await post_invoice(
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, date="01/01/2031")
    )
    assert code_of(bad_format) == (400, "invalid_date", ["date"])


def item(siigo_account: SiigoAccount, **overrides: Any) -> dict[str, Any]:
    return {
        "code": "SKU-1",
        "quantity": 1,
        "price": 100,
        "taxes": [{"id": int(siigo_account.tax_id())}],
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
    siigo_account: SiigoAccount,
    siigo_headers: dict[str, str],
    change: Any,
    expected: tuple[str, list[str]],
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(
        siigo_sandbox,
        siigo_account,
        items=[item(siigo_account)],
        payments=[{"id": int(siigo_account.payment_type()), "value": 119}],
    )
    assert (await post_invoice(siigo_sandbox, siigo_headers, body)).status_code == 201
    body.update(change(siigo_account))
    resp = await post_invoice(siigo_sandbox, siigo_headers, body)
    assert code_of(resp) == (400, *expected)
    assert len(await siigo_sandbox.invoices(siigo_account)) == 1


async def test_credit_payment_needs_a_due_date_and_stands_alone(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    today = siigo_sandbox.state.today_colombia()
    due = (today + timedelta(days=30)).isoformat()
    credit = {"id": int(siigo_account.payment_type("Crédito")), "value": 119, "due_date": due}
    base = {"items": [item(siigo_account)]}
    ok = await post_invoice(
        siigo_sandbox,
        siigo_headers,
        raw_invoice(siigo_sandbox, siigo_account, payments=[credit], **base),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["payments"][0]["due_date"] == due
    split = [{**credit, "value": 100}, {"id": int(siigo_account.payment_type()), "value": 19}]
    resp = await post_invoice(
        siigo_sandbox,
        siigo_headers,
        raw_invoice(siigo_sandbox, siigo_account, payments=split, **base),
    )
    assert code_of(resp) == (400, "invalid_payment", ["payments"])


async def test_customer_state_rules(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    created = await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(siigo_sandbox, siigo_account)
    await siigo_sandbox.http.patch(f"/_sandbox/customers/{created['id']}", json={"contacts": []})
    resp = await post_invoice(siigo_sandbox, siigo_headers, body)
    assert code_of(resp) == (400, "customer_settings", ["customer.identification"])
    await siigo_sandbox.http.patch(
        f"/_sandbox/customers/{created['id']}",
        json={"active": False, "contacts": [{"first_name": "M"}]},
    )
    resp = await post_invoice(siigo_sandbox, siigo_headers, body)
    assert code_of(resp) == (400, "parameter_inactive", ["customer.identification"])


async def test_customer_sent_inline_is_created_with_the_invoice(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
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
        siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account, customer=inline)
    )
    assert resp.status_code == 201, resp.text
    customers = await siigo_sandbox.customers(siigo_account)
    assert [c["identification"] for c in customers] == ["209048401"]
    assert resp.json()["customer"]["id"] == customers[0]["id"]


async def test_taxed_price_backs_out_the_base(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    line = {
        "code": "SKU-1",
        "quantity": 1,
        "taxed_price": 10000,
        "taxes": [{"id": int(siigo_account.tax_id())}],
    }
    resp = await post_invoice(
        siigo_sandbox,
        siigo_headers,
        raw_invoice(
            siigo_sandbox,
            siigo_account,
            items=[line],
            payments=[{"id": int(siigo_account.payment_type()), "value": 10000}],
        ),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["items"][0]["taxes"][0]["value"] == 1596.64


# --- listing ----------------------------------------------------------------------------


async def test_invoice_list_paging_and_filters(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(siigo_sandbox, siigo_account)
    for _ in range(12):
        assert (await post_invoice(siigo_sandbox, siigo_headers, body)).status_code == 201
    today = siigo_sandbox.state.today_colombia().isoformat()

    async def page(**params: Any) -> dict[str, Any]:
        resp = await siigo_sandbox.http.get("/v1/invoices", params=params, headers=siigo_headers)
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
        "/v1/invoices", params={"date_start": "ayer"}, headers=siigo_headers
    )
    assert code_of(bad) == (400, "invalid_date", ["date_start"])


async def test_connector_pages_through_the_sandbox(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    body = raw_invoice(siigo_sandbox, siigo_account)
    for _ in range(23):
        await post_invoice(siigo_sandbox, siigo_headers, body)
    today = siigo_sandbox.state.today_colombia()
    connector = siigo_sandbox.connector(page_size=10)
    listed = [i async for i in connector.list_invoices(siigo_account.credentials, today, today)]
    assert [i.number for i in listed] == list(range(1, 24))
    pages = [e["query"] for e in await siigo_sandbox.requests(path="/v1/invoices", method="GET")]
    assert len(pages) == 3 and all("page_size=10" in q for q in pages)
