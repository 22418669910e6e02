"""The Siigo connector's HTTP behaviour, against respx: invoice request bodies, replays and
paging."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from connectors.errors import DataError
from connectors.models import (
    InvoiceItem,
    InvoicePayment,
)
from connectors.siigo.erp import SiigoConnector
from tests.connectors.siigo.fixtures import (
    CREDS,
    blueprint_draft,
    invoice_json,
)

# --- invoices ---------------------------------------------------------------------------


async def test_invoice_body_is_exact_and_keyed(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    route = mocked.post("/v1/invoices").respond(201, json=invoice_json())
    invoice = await connector.create_invoice(
        CREDS, blueprint_draft(reference="ML 2000003508419013"), "ML2000003508419013"
    )
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == "ML2000003508419013"
    assert request.headers["Content-Type"] == "application/json"
    assert request.extensions["timeout"]["read"] == 120.0
    raw = request.content.decode()
    assert '"quantity":2,' in raw
    assert '"price":1069.77' in raw
    assert '"value":2546.05' in raw
    body = json.loads(raw)
    assert body["document"] == {"id": 24446}
    assert body["seller"] == 629
    assert body["customer"] == {"identification": "13832081", "branch_office": 0}
    assert body["items"][0]["taxes"] == [{"id": 13156}]
    assert body["stamp"] == {"send": True}
    assert body["observations"] == "ML 2000003508419013"
    assert invoice.total == Decimal("2546.05")
    assert (invoice.name, invoice.number, invoice.stamp_status) == ("FV-2-22", 22, "Accepted")
    assert invoice.idempotency_key == "ML2000003508419013"
    assert not invoice.replayed
    assert invoice.raw["name"] == "FV-2-22"


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        (
            {
                "items": [
                    InvoiceItem(
                        code="X", description="x", quantity=Decimal(1), price=Decimal("1.0000001")
                    )
                ]
            },
            "invalid_amount",
            "items.price",
        ),
        (
            {
                "items": [
                    InvoiceItem(
                        code="X", description="x", quantity=Decimal("1.001"), price=Decimal(1)
                    )
                ]
            },
            "invalid_amount",
            "items.quantity",
        ),
        (
            {"payments": [InvoicePayment(payment_type="1", value=Decimal("1.005"))]},
            "invalid_amount",
            "payments.value",
        ),
        ({"seller": None}, "parameter_required", "seller"),
        ({"seller": "vendedor"}, "invalid_reference", "seller"),
        ({"document_type": "FV"}, "invalid_reference", "document.id"),
        ({"observations": "x" * 4001}, "length_max", "observations"),
    ],
)
async def test_bad_drafts_never_leave(
    mocked: respx.MockRouter,
    connector: SiigoConnector,
    changes: dict[str, Any],
    code: str,
    field: str,
) -> None:
    route = mocked.post("/v1/invoices").respond(201, json=invoice_json())
    with pytest.raises(DataError) as caught:
        await connector.create_invoice(CREDS, blueprint_draft(**changes), "KEY1")
    assert (caught.value.code, caught.value.field) == (code, field)
    assert not route.called


@pytest.mark.parametrize("key", ["", "ML-123", "ML 123", "A" * 31, "clave_ñ"])
async def test_idempotency_key_is_checked_before_sending(
    mocked: respx.MockRouter, connector: SiigoConnector, key: str
) -> None:
    route = mocked.post("/v1/invoices").respond(201, json=invoice_json())
    with pytest.raises(DataError) as caught:
        await connector.create_invoice(CREDS, blueprint_draft(), key)
    assert caught.value.code == "invalid_idempotency-key"
    assert not route.called and not mocked["auth"].called


@pytest.mark.parametrize(
    ("status", "headers", "replayed"),
    [(201, {}, False), (200, {}, True), (201, {"Idempotent-Replayed": "true"}, True)],
)
async def test_replay_is_recognised(
    mocked: respx.MockRouter,
    connector: SiigoConnector,
    status: int,
    headers: dict[str, str],
    replayed: bool,
) -> None:
    mocked.post("/v1/invoices").respond(status, json=invoice_json(), headers=headers)
    invoice = await connector.create_invoice(CREDS, blueprint_draft(), "A" * 30)
    assert invoice.replayed is replayed


async def test_get_invoice_quotes_the_id(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    route = mocked.get(url__regex=r".*/v1/invoices/.+").respond(200, json=invoice_json())
    invoice = await connector.get_invoice(CREDS, "a/b")
    assert route.calls.last.request.url.raw_path == b"/v1/invoices/a%2Fb"
    assert invoice.id == "63f918c2-ca65-4edc-a7db-66bcdd5159fb"


async def test_list_invoices_pages_to_the_end(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        size = int(request.url.params["page_size"])
        ids = [f"inv-{n}" for n in range(60)][(number - 1) * size : number * size]
        return httpx.Response(
            200,
            json={
                "pagination": {"page": number, "page_size": size, "total_results": 60},
                "results": [invoice_json(id=i) for i in ids],
            },
        )

    route = mocked.get("/v1/invoices").mock(side_effect=page)
    listed = [
        i.id async for i in connector.list_invoices(CREDS, date(2030, 5, 1), date(2030, 5, 31))
    ]
    assert listed == [f"inv-{n}" for n in range(60)]
    assert route.call_count == 3
    params = route.calls[0].request.url.params
    assert (params["date_start"], params["date_end"]) == ("2030-05-01", "2030-05-31")
