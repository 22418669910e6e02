"""The Siigo connector's HTTP behaviour, against respx: tokens, headers, the limiter,
request bodies, replays, paging and catalog caching."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors.errors import DataError, RateLimited, TransientError
from connectors.models import (
    CustomerSpec,
    ErpCredentials,
    InvoiceItem,
    InvoicePayment,
    RateBudget,
)
from connectors.siigo import connector as siigo_spec
from connectors.siigo import factory
from connectors.siigo.erp import SiigoConnector
from tests.connectors.siigo.fixtures import blueprint_draft, invoice_json

BASE = "https://api.siigo.test"
CREDS = ErpCredentials(username="api@empresa.example", access_key=SecretStr("secret-key"))
OTHER = ErpCredentials(username="otra@empresa.example", access_key=SecretStr("other-key"))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class RecordingLimiter:
    """Yields to the loop on every acquire, as a shared limiter would."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.budgets: list[RateBudget] = []
        self.pushed: list[tuple[str, float]] = []

    async def acquire(self, key: str, budget: RateBudget) -> None:
        self.keys.append(key)
        self.budgets.append(budget)
        await asyncio.sleep(0)

    async def push_back(self, key: str, seconds: float) -> None:
        self.pushed.append((key, seconds))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def mocked() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        tokens = iter(f"tok-{n}" for n in range(1, 100))
        router.post("/auth", name="auth").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "access_token": next(tokens),
                    "expires_in": 86400,
                    "token_type": "Bearer",
                    "scope": "SiigoAPI",
                },
            )
        )
        yield router


@pytest.fixture
async def connector(clock: Clock, limiter: RecordingLimiter) -> AsyncIterator[SiigoConnector]:
    async with httpx.AsyncClient() as http:
        yield SiigoConnector(
            http,
            base_url=BASE,
            partner_id="ConexAPI",
            limiter=limiter,
            clock=clock,
            invoice_timeout=120.0,
            page_size=25,
        )


def products(*codes: str) -> dict[str, Any]:
    return {
        "pagination": {"page": 1, "page_size": 25, "total_results": len(codes)},
        "results": [
            {"id": f"id-{c}", "code": c, "name": c, "active": True, "taxes": [{"id": 13156}]}
            for c in codes
        ],
    }


# --- tokens, headers, limiter ---------------------------------------------------------


async def test_headers_and_one_token_per_account(
    mocked: respx.MockRouter, connector: SiigoConnector, limiter: RecordingLimiter
) -> None:
    route = mocked.get("/v1/products").respond(200, json=products("A"))
    for _ in range(3):
        await connector.find_product(CREDS, "A")
    await connector.find_product(OTHER, "A")
    auth = mocked["auth"]
    assert auth.call_count == 2
    assert [json.loads(c.request.content)["username"] for c in auth.calls] == [
        CREDS.username,
        OTHER.username,
    ]
    first = auth.calls[0].request
    assert json.loads(first.content) == {"username": CREDS.username, "access_key": "secret-key"}
    assert first.headers["Partner-Id"] == "ConexAPI"
    sent = [call.request for call in route.calls]
    assert [r.headers["Authorization"] for r in sent] == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]
    assert all(r.headers["Partner-Id"] == "ConexAPI" for r in sent)
    assert len({r.headers["x-request-id"] for r in sent}) == 4
    assert sent[0].url.params["code"] == "A"
    # The limiter is asked before every request, /auth included, per account.
    assert limiter.keys == [f"siigo:{CREDS.username}"] * 4 + [f"siigo:{OTHER.username}"] * 2


async def test_each_company_is_paced_at_the_budget_its_credentials_bring(
    mocked: respx.MockRouter, connector: SiigoConnector, limiter: RecordingLimiter
) -> None:
    mocked.get("/v1/products").respond(200, json=products("A"))
    test_company = CREDS.model_copy(update={"budget": connector.rate_budget("test")})
    await connector.find_product(test_company, "A")
    await connector.find_product(OTHER, "A")
    # /auth and the call each: the test company at Siigo's 10 a minute, the other (no
    # budget of its own) at the connector's default, a production company's 100.
    assert (
        limiter.budgets
        == [RateBudget(requests=10, window_seconds=60.0)] * 2
        + [RateBudget(requests=100, window_seconds=60.0)] * 2
    )


def test_budget_by_mode_with_the_connection_s_own_first() -> None:
    siigo = SiigoConnector(
        httpx.AsyncClient(),
        base_url=BASE,
        partner_id="ConexAPI",
        requests_per_minute=80,
        rate_window_seconds=6.0,
    )
    assert siigo.modes == ("production", "test")
    assert siigo.rate_budget(None) == RateBudget(requests=80, window_seconds=6.0)
    assert siigo.rate_budget("production") == RateBudget(requests=80, window_seconds=6.0)
    assert siigo.rate_budget("test") == RateBudget(requests=10, window_seconds=6.0)
    assert siigo.rate_budget("test", 4) == RateBudget(requests=4, window_seconds=6.0)
    with pytest.raises(ValueError, match="production, test"):
        siigo.rate_budget("sandbox")


@pytest.mark.parametrize(
    ("headers", "pushed"),
    [({}, 60.0), ({"Retry-After": "7"}, 7.0)],
    ids=["without-retry-after", "with-retry-after"],
)
async def test_a_429_pushes_the_company_s_schedule_back(
    mocked: respx.MockRouter,
    connector: SiigoConnector,
    limiter: RecordingLimiter,
    headers: dict[str, str],
    pushed: float,
) -> None:
    body = {"Status": 429, "Errors": [{"Code": "requests_limit", "Message": "Too many"}]}
    mocked.get("/v1/products").respond(429, json=body, headers=headers)
    with pytest.raises(RateLimited):
        await connector.find_product(CREDS, "A")
    # By Siigo's Retry-After when it sends one, else by a whole window of the budget.
    assert limiter.pushed == [(f"siigo:{CREDS.username}", pushed)]


async def test_other_failures_leave_the_schedule_alone(
    mocked: respx.MockRouter, connector: SiigoConnector, limiter: RecordingLimiter
) -> None:
    mocked.get("/v1/products").respond(503, json={"Status": 503, "Errors": []})
    with pytest.raises(TransientError):
        await connector.find_product(CREDS, "A")
    assert limiter.pushed == []


async def test_token_is_renewed_before_it_expires(
    mocked: respx.MockRouter, connector: SiigoConnector, clock: Clock
) -> None:
    route = mocked.get("/v1/products").respond(200, json=products("A"))
    await connector.find_product(CREDS, "A")
    clock.now += timedelta(hours=23, minutes=50)
    await connector.find_product(CREDS, "A")
    assert mocked["auth"].call_count == 1
    clock.now += timedelta(minutes=6)  # within 5 minutes of the 24 h expiry
    await connector.find_product(CREDS, "A")
    assert mocked["auth"].call_count == 2
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-2"


async def test_a_changed_access_key_gets_a_new_token(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    mocked.get("/v1/products").respond(200, json=products("A"))
    await connector.find_product(CREDS, "A")
    rotated = ErpCredentials(username=CREDS.username, access_key=SecretStr("new-key"))
    await connector.find_product(rotated, "A")
    assert mocked["auth"].call_count == 2


async def test_one_401_reauthenticates_once_and_retries(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    route = mocked.get("/v1/products").mock(
        side_effect=[
            httpx.Response(200, json=products("A")),
            httpx.Response(401, json={"Status": 401, "Errors": [{"Code": "unauthorized"}]}),
            httpx.Response(200, json=products("A")),
        ]
    )
    await connector.find_product(CREDS, "A")
    product = await connector.find_product(CREDS, "A")
    assert product is not None and product.code == "A"
    assert mocked["auth"].call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_concurrent_calls_share_one_auth(
    mocked: respx.MockRouter, connector: SiigoConnector
) -> None:
    mocked.get("/v1/products").respond(200, json=products("A"))
    await asyncio.gather(*(connector.find_product(CREDS, "A") for _ in range(5)))
    assert mocked["auth"].call_count == 1


async def test_authenticate_returns_a_session_and_caches_it(
    mocked: respx.MockRouter, connector: SiigoConnector, clock: Clock
) -> None:
    session = await connector.authenticate(CREDS)
    assert session.access_token.get_secret_value() == "tok-1"
    assert session.expires_at == clock.now + timedelta(seconds=86400)
    assert "tok-1" not in repr(session)
    route = mocked.get("/v1/products").respond(200, json=products("A"))
    await connector.find_product(CREDS, "A")
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-1"
    assert mocked["auth"].call_count == 1


def test_partner_id_format_is_checked_up_front() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError):
        SiigoConnector(http, base_url=BASE, partner_id="Conex API")


def test_factory_builds_from_settings() -> None:
    from conexapi.settings import Environment, Settings

    settings = Settings(
        env=Environment.test,
        connectors={"siigo": {"api_url": BASE + "/", "partner_id": "Tienda1"}},
    )
    limiter = RecordingLimiter()
    built = siigo_spec.factory(httpx.AsyncClient(), settings, limiter)
    assert isinstance(built, SiigoConnector)
    assert built.client.base_url == BASE and built.client.partner_id == "Tienda1"
    assert built.client.limiter is limiter
    assert siigo_spec.kind == "erp" and siigo_spec.factory is factory


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
