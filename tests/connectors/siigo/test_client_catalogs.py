"""The Siigo connector's HTTP behaviour, against respx: customers, products and catalog
caching."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import respx

from connectors.models import (
    CustomerSpec,
)
from connectors.siigo.erp import SiigoConnector
from tests.connectors.siigo.fixtures import (
    CREDS,
    OTHER,
    products,
)

# --- customers --------------------------------------------------------------------------


async def test_ensure_customer_finds_before_creating(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    mocked.get("/v1/customers").respond(
        200,
        json={
            "pagination": {"page": 1, "page_size": 25, "total_results": 1},
            "results": [{"id": "c1", "identification": "1020304050", "branch_office": 0}],
        },
    )
    create = mocked.post("/v1/customers").respond(201, json={"id": "new"})
    spec = CustomerSpec(
        id_type="13",
        identification="1020304050",
        person_type="person",
        first_name="A",
        last_name="B",
    )
    ref = await connector.ensure_customer(CREDS, spec)
    assert (ref.id, ref.created) == ("c1", False)
    assert not create.called


async def test_ensure_customer_creates_and_survives_a_race(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    empty = {"pagination": {"page": 1, "page_size": 25, "total_results": 0}, "results": []}
    found = {
        "pagination": {"page": 1, "page_size": 25, "total_results": 1},
        "results": [{"id": "theirs", "identification": "1020304050", "branch_office": 0}],
    }
    search = mocked.get("/v1/customers").mock(
        side_effect=[
            httpx.Response(200, json=empty),
            httpx.Response(200, json=empty),
            httpx.Response(200, json=found),
        ]
    )
    create = mocked.post("/v1/customers").mock(
        side_effect=[
            httpx.Response(201, json={"id": "mine", "identification": "1020304050"}),
            httpx.Response(
                400,
                json={
                    "Status": 400,
                    "Errors": [
                        {
                            "Code": "already_exists",
                            "Message": "exists",
                            "Params": ["identification"],
                        }
                    ],
                },
            ),
        ]
    )
    spec = CustomerSpec(
        id_type="13",
        identification="1020304050",
        person_type="person",
        first_name="A",
        last_name="B",
    )
    created = await connector.ensure_customer(CREDS, spec)
    assert (created.id, created.created) == ("mine", True)
    assert json.loads(create.calls[0].request.content)["contacts"][0]["first_name"] == "A"
    raced = await connector.ensure_customer(CREDS, spec)
    assert (raced.id, raced.created) == ("theirs", False)
    assert search.call_count == 3
    assert search.calls[0].request.url.params["identification"] == "1020304050"


# --- products and catalogs --------------------------------------------------------------


async def test_find_product_matches_the_code_exactly(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    mocked.get("/v1/products").respond(200, json=products("SKU-10", "SKU-1"))
    product = await connector.find_product(CREDS, "SKU-1")
    assert product is not None and product.id == "id-SKU-1" and product.tax_ids == ["13156"]
    mocked.get("/v1/products").respond(200, json=products())
    assert await connector.find_product(CREDS, "SKU-1") is None


async def test_catalogs_are_cached_per_account(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    docs = mocked.get("/v1/document-types").respond(
        200,
        json=[
            {
                "id": 24446,
                "code": "1",
                "name": "Factura",
                "type": "FV",
                "active": True,
                "electronic_type": "ElectronicInvoice",
                "discount_type": "Value",
            }
        ],
    )
    pays = mocked.get("/v1/payment-types").respond(
        200,
        json=[{"id": 5636, "name": "Crédito", "type": "Cartera", "active": True, "due_date": True}],
    )
    taxes = mocked.get("/v1/taxes").respond(
        200,
        content=b'[{"id": 13156, "name": "IVA 19%",'
        b' "type": "IVA", "percentage": 19.00,'
        b' "active": true}]',
    )
    mocked.get("/v1/users").respond(
        200,
        json={
            "pagination": {"page": 1, "page_size": 25, "total_results": 1},
            "results": [{"id": 629, "username": "v@x.co", "active": True}],
        },
    )
    catalogs = await connector.catalogs(CREDS)
    assert catalogs.document_types[0].id == 24446
    assert catalogs.payment_types[0].due_date is True
    assert catalogs.tax_percentages() == {"13156": Decimal("19.00")}
    assert [u.id for u in catalogs.users] == [629]
    assert docs.calls[0].request.url.params["type"] == "FV"
    assert pays.calls[0].request.url.params["document_type"] == "FV"
    assert await connector.catalogs(CREDS) is catalogs
    assert taxes.call_count == 1
    await connector.catalogs(OTHER)
    assert taxes.call_count == 2
    await connector.catalogs(CREDS, refresh=True)
    assert taxes.call_count == 3
    connector.catalog_ttl = 0
    connector.forget_catalogs(CREDS.username)
    await connector.catalogs(CREDS)
    await connector.catalogs(CREDS)
    assert taxes.call_count == 5
