"""Fixtures for the Siigo connector's tests: an in-process sandbox, a connector pointed at
it, and the ERP contract harness. Registered in ``tests/connectors/siigo/conftest.py``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from connectors.models import (
    ErpCredentials,
    InvoiceDraft,
    InvoiceItem,
    InvoicePayment,
    RateBudget,
)
from connectors.siigo import wire
from connectors.siigo.erp import SiigoConnector
from connectors.siigo.sandbox import create_app
from connectors.siigo.sandbox.state import SiigoState
from connectors.siigo.totals import draft_total
from tests.connectors.contract_erp import ErpAccount, Fault, Operation

SIIGO_URL = "http://siigo.sandbox"
PARTNER_ID = "ConexAPITests"
_usernames = itertools.count(1)


class DeadlineASGITransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` ignores timeouts; this one enforces the request's read
    timeout, so a sandbox that never answers looks to the client like a real timeout."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            return await asyncio.wait_for(self.inner.handle_async_request(request), timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("the sandbox did not answer in time", request=request) from None


@dataclass
class SiigoAccount:
    credentials: ErpCredentials
    company: dict[str, Any]

    @property
    def username(self) -> str:
        return self.credentials.username

    def tax_id(self, name: str = "IVA 19%") -> str:
        return str(self.company["tax_ids"][name])

    def payment_type(self, name: str = "Efectivo") -> str:
        return str(next(p["id"] for p in self.company["payment_types"] if p["name"] == name))

    def document_type(self, code: str = "1") -> str:
        return str(next(d["id"] for d in self.company["document_types"] if d["code"] == code))


class SiigoSandbox:
    """The sandbox app plus one HTTP client to it (admin calls and connectors share it)."""

    def __init__(self, app: FastAPI, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http

    @property
    def state(self) -> SiigoState:
        state: SiigoState = self.app.state.siigo
        return state

    def connector(self, **options: Any) -> SiigoConnector:
        options.setdefault("timeout", 2.0)
        options.setdefault("invoice_timeout", 2.0)
        return SiigoConnector(self.http, base_url=SIIGO_URL, partner_id=PARTNER_ID, **options)

    async def account(self, mode: str = "production") -> SiigoAccount:
        username = f"api{next(_usernames)}@empresa.example"
        access_key = f"key-{username}"
        resp = await self.http.post(
            "/_sandbox/companies",
            json={"username": username, "access_key": access_key, "mode": mode},
        )
        assert resp.status_code == 201, resp.text
        return SiigoAccount(
            ErpCredentials(username=username, access_key=SecretStr(access_key)), resp.json()
        )

    async def product(
        self,
        account: SiigoAccount,
        code: str,
        taxes: Sequence[str] = ("IVA 19%",),
        active: bool = True,
    ) -> dict[str, Any]:
        resp = await self.http.post(
            "/_sandbox/products",
            json={
                "company": account.username,
                "code": code,
                "name": f"Producto {code}",
                "taxes": [int(account.tax_id(t)) for t in taxes],
                "active": active,
            },
        )
        assert resp.status_code == 201, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def configure(self, **changes: Any) -> dict[str, Any]:
        resp = await self.http.patch("/_sandbox/config", json=changes)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def invoices(self, account: SiigoAccount) -> list[dict[str, Any]]:
        resp = await self.http.get("/_sandbox/invoices", params={"company": account.username})
        result: list[dict[str, Any]] = resp.json()
        return result

    async def customers(self, account: SiigoAccount) -> list[dict[str, Any]]:
        resp = await self.http.get("/_sandbox/customers", params={"company": account.username})
        result: list[dict[str, Any]] = resp.json()
        return result

    async def requests(
        self, path: str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("path", path), ("method", method)) if v}
        result: list[dict[str, Any]] = (
            await self.http.get("/_sandbox/requests", params=params)
        ).json()
        return result

    async def token(self, account: SiigoAccount) -> str:
        resp = await self.http.post(
            "/auth",
            json={
                "username": account.username,
                "access_key": account.credentials.access_key.get_secret_value(),
            },
        )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def headers(self, account: SiigoAccount) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(account)}", "Partner-Id": PARTNER_ID}


def today_in_colombia(sandbox: SiigoSandbox) -> date:
    return sandbox.state.today_colombia()


def blueprint_draft(**overrides: Any) -> InvoiceDraft:
    """The blueprint's example invoice as a draft: 2 x Item-1 at 1069.77, IVA 19 %."""
    values: dict[str, Any] = {
        "document_type": "24446",
        "date": date(2030, 5, 1),
        "customer_identification": "13832081",
        "seller": "629",
        "items": [
            InvoiceItem(
                code="Item-1",
                description="Camiseta de algodón",
                quantity=Decimal(2),
                price=Decimal("1069.77"),
                tax_ids=["13156"],
            )
        ],
        "payments": [InvoicePayment(payment_type="5636", value=Decimal("2546.05"))],
        "send_stamp": True,
    }
    values.update(overrides)
    return InvoiceDraft(**values)


@pytest.fixture
async def siigo_sandbox() -> AsyncIterator[SiigoSandbox]:
    app = create_app()
    async with httpx.AsyncClient(transport=DeadlineASGITransport(app), base_url=SIIGO_URL) as http:
        yield SiigoSandbox(app, http)


# --- the ERP contract harness ---------------------------------------------------------

_ROUTES: dict[Operation, str] = {
    "create_invoice": "POST /v1/invoices",
    "find_product": "GET /v1/products",
    "ensure_customer": "GET /v1/customers",
    "get_invoice": "GET /v1/invoices/*",
}


class SiigoHarness:
    total_mismatch_code = "invalid_total_payments"

    def __init__(self, sandbox: SiigoSandbox) -> None:
        self.sandbox = sandbox
        # Small pages so that a few dozen invoices already span several pages; short
        # timeouts so that an injected hang is noticed quickly.
        self.connector = sandbox.connector(page_size=10, timeout=0.5, invoice_timeout=0.5)
        self._accounts: dict[str, SiigoAccount] = {}

    async def new_account(self) -> ErpAccount:
        account = await self.sandbox.account()
        self._accounts[account.username] = account
        return ErpAccount(credentials=account.credentials, details=account.company)

    async def add_product(self, account: ErpAccount, code: str) -> None:
        await self.sandbox.product(self._accounts[account.credentials.username], code)

    def draft(
        self,
        account: ErpAccount,
        customer_identification: str,
        lines: Sequence[tuple[str, Decimal, Decimal]],
        payment_delta: Decimal = Decimal(0),
    ) -> InvoiceDraft:
        siigo = self._accounts[account.credentials.username]
        draft = InvoiceDraft(
            document_type=siigo.document_type(),
            date=today_in_colombia(self.sandbox),
            customer_identification=customer_identification,
            seller=str(siigo.company["seller_id"]),
            items=[
                InvoiceItem(
                    code=code,
                    description=f"Producto {code}",
                    quantity=quantity,
                    price=price,
                    tax_ids=[siigo.tax_id()],
                )
                for code, quantity, price in lines
            ],
            payments=[InvoicePayment(payment_type=siigo.payment_type(), value=Decimal(0))],
            send_stamp=True,
        )
        total = draft_total(draft, {siigo.tax_id(): Decimal(19)})
        return draft.model_copy(
            update={
                "payments": [
                    InvoicePayment(payment_type=siigo.payment_type(), value=total + payment_delta)
                ]
            }
        )

    async def stored_invoices(self, account: ErpAccount) -> int:
        return len(await self.sandbox.invoices(self._accounts[account.credentials.username]))

    async def stored_customers(self, account: ErpAccount) -> int:
        return len(await self.sandbox.customers(self._accounts[account.credentials.username]))

    async def inject(self, operation: Operation, fault: Fault) -> None:
        route = _ROUTES[operation]
        if fault == "rate_limited":
            await self.sandbox.configure(fail_next=[{"route": route, "status": 429}])
        elif fault == "timeout":
            await self.sandbox.configure(
                fail_next=[{"route": route, "status": "timeout"}], hang_seconds=10
            )
        else:
            await self.sandbox.configure(timeout_after_commit=[{"route": route}], hang_seconds=10)

    async def expire_sessions(self, account: ErpAccount) -> None:
        resp = await self.sandbox.http.post(
            "/_sandbox/tokens/expire", json={"company": account.credentials.username}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["expired"] >= 1

    async def sessions_opened(self, account: ErpAccount) -> int:
        return sum(
            1
            for entry in await self.sandbox.requests(path="/auth", method="POST")
            if entry["status"] == 200
            and (entry.get("body") or {}).get("username") == account.credentials.username
        )


@pytest.fixture
async def siigo_harness(siigo_sandbox: SiigoSandbox) -> SiigoHarness:
    return SiigoHarness(siigo_sandbox)


# --- raw calls to the sandbox ----------------------------------------------------------


def code_of(resp: httpx.Response) -> tuple[int, str, list[str]]:
    """(HTTP status, first error Code, its Params) of a Siigo error answer."""
    error = resp.json()["Errors"][0]
    return resp.status_code, error["Code"], error["Params"]


@pytest.fixture
async def siigo_account(siigo_sandbox: SiigoSandbox) -> SiigoAccount:
    """A production company with products SKU-1 (IVA 19 %), SKU-5 (IVA 5 %) and an inactive
    OLD-1."""
    account = await siigo_sandbox.account()
    await siigo_sandbox.product(account, "SKU-1")
    await siigo_sandbox.product(account, "SKU-5", taxes=("IVA 5%",))
    await siigo_sandbox.product(account, "OLD-1", active=False)
    return account


@pytest.fixture
async def siigo_headers(siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount) -> dict[str, str]:
    """Headers for ``siigo_account``'s raw calls: a fresh token and the Partner-Id."""
    return await siigo_sandbox.headers(siigo_account)


async def seed_customer(
    sandbox: SiigoSandbox, headers: dict[str, str], identification: str = "13832081", **extra: Any
) -> dict[str, Any]:
    """A customer created through ``POST /v1/customers``."""
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


def raw_invoice(sandbox: SiigoSandbox, account: SiigoAccount, **overrides: Any) -> dict[str, Any]:
    """A valid ``POST /v1/invoices`` body for the seeded customer: 2 x SKU-1 at 1069.77 with
    IVA 19 %, paid 2546.05 in cash."""
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


def invoice_json(**overrides: Any) -> dict[str, Any]:
    data = {
        "id": "63f918c2-ca65-4edc-a7db-66bcdd5159fb",
        "document": {"id": 24446},
        "number": 22,
        "name": "FV-2-22",
        "date": "2030-05-01",
        "customer": {"id": "c1", "identification": "13832081", "branch_office": 0},
        "seller": 629,
        "total": 2546.05,
        "stamp": {"status": "Accepted"},
        "metadata": {"created": "2030-05-01T17:00:00.000Z", "last_updated": None},
    }
    data.update(overrides)
    return data


# --- the connector against respx (test_client*.py) ---------------------------------------

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


def products(*codes: str) -> dict[str, Any]:
    return {
        "pagination": {"page": 1, "page_size": 25, "total_results": len(codes)},
        "results": [
            {"id": f"id-{c}", "code": c, "name": c, "active": True, "taxes": [{"id": 13156}]}
            for c in codes
        ],
    }
