"""Mercado Libre test wiring: the sandbox in-process, the connector pointed at it, and a
callback endpoint that records what the sandbox's notifier delivers.

Plain async factories (STYLE §12); each test module makes its own small fixtures from them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import respx
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from conexapi.settings import Settings
from connectors.base import InboundRequest, NoLimit
from connectors.mercadolibre import MercadoLibreConnector, factory
from connectors.mercadolibre.sandbox import MLSandbox, create_app, sandbox_of
from connectors.models import AuthorizationRequest, TokenSet
from tests.connectors.contract_marketplace import TimeoutASGITransport

#: Beyond 2^53 on purpose: application ids must be compared as text, never as doubles.
CLIENT_ID = "9007199254740993"
CLIENT_SECRET = "sandbox-secret-not-real"
REDIRECT_URI = "https://conexapi.test/oauth/mercadolibre/callback"
SELLER_ID = 468424240
OTHER_SELLER_ID = 777000111
WEBHOOK_TOKEN = "hook-token-for-tests"
CALLBACK_URL = f"https://conexapi.test/webhooks/mercadolibre?token={WEBHOOK_TOKEN}"
ML_SOURCE_IP = "54.88.218.97"
SANDBOX_BASE = "http://ml-sandbox.test"


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    query: dict[str, str]
    client_ip: str | None

    def inbound(self) -> InboundRequest:
        return InboundRequest(
            body=self.body, headers=self.headers, query=self.query, client_ip=self.client_ip
        )

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Callback:
    """An ASGI endpoint standing in for the product's webhook.

    ``plan`` holds ``(status, delay_seconds)`` answers, used one per request; when empty
    it answers 200 at once.
    """

    plan: list[tuple[int, float]] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        self.received.append(
            Delivery(b"".join(chunks), headers, query, client[0] if client else None)
        )
        status, delay = self.plan.pop(0) if self.plan else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})


def ml_settings(**overrides: Any) -> Settings:
    """Test settings; ``overrides`` are the connector's own settings (``api_url=...``)."""
    own: dict[str, Any] = {
        "api_url": SANDBOX_BASE,
        "auth_url": SANDBOX_BASE,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "redirect_uri": REDIRECT_URI,
        "webhook_token": SecretStr(WEBHOOK_TOKEN),
        "notification_ips": "",
    }
    own.update(overrides)
    return Settings(_env_file=None, env="test", connectors={"mercadolibre": own})


@dataclass
class MLEnv:
    app: FastAPI
    sandbox: MLSandbox
    #: Client for the sandbox as the seller's browser / the admin (no timeout tricks).
    admin: httpx.AsyncClient
    #: The connector's own client (short read timeout, honoured in-process).
    http: httpx.AsyncClient
    connector: MercadoLibreConnector
    callback: Callback
    account_id: str = str(SELLER_ID)

    # --- MarketplaceHarness --------------------------------------------------------------

    async def consent(self, request: AuthorizationRequest, user_id: int = SELLER_ID) -> str:
        response = await self.admin.get(f"{request.url}&auto_consent={user_id}")
        assert response.status_code == 302, response.text
        location = urlsplit(response.headers["location"])
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        assert query.get("state") == request.state
        return query["code"]

    async def tokens(self, user_id: int = SELLER_ID) -> TokenSet:
        request = self.connector.authorization_request(state=f"state-{user_id}")
        code = await self.consent(request, user_id)
        return await self.connector.exchange_code(code, request.code_verifier)

    async def seed_orders(self, count: int, seed: int = 7, **mix: Any) -> list[str]:
        response = await self.admin.post(
            "/_sandbox/orders/generate",
            json={"seller_id": int(self.account_id), "count": count, "seed": seed, "mix": mix},
        )
        assert response.status_code == 201, response.text
        return [str(i) for i in response.json()["ids"]]

    async def capture_notification(self, order_id: str) -> InboundRequest:
        before = len(self.callback.received)
        response = await self.admin.post(
            "/_sandbox/notify",
            json={"topic": "orders_v2", "resource": f"/orders/{order_id}"},
        )
        assert response.status_code == 200, response.text
        assert len(self.callback.received) == before + 1
        return self.callback.received[-1].inbound()

    def forged_notifications(self, valid: InboundRequest) -> list[InboundRequest]:
        body = json.loads(valid.body)

        def with_body(**changes: Any) -> InboundRequest:
            return replace(valid, body=json.dumps({**body, **changes}).encode())

        return [
            # Off by one beyond 2^53: equal as doubles, different as ids.
            with_body(application_id=int(CLIENT_ID) - 1),
            with_body(resource="/orders/not-a-number"),
            with_body(resource="/orders/123/../../users/me"),
            with_body(user_id="12abc"),
            with_body(topic="no such topic!"),
            replace(valid, query={"token": "wrong"}),
            replace(valid, query={}),
        ]

    async def throttle(self) -> None:
        # One request a minute per application, and spend it with the app's newest token:
        # the connector's next call is over the limit.
        await patch_config(self, rate_limit={"requests_per_minute": 1})
        grant = list(self.sandbox.state.access.values())[-1]
        spent = await self.http.get(
            f"{SANDBOX_BASE}/users/me", headers={"Authorization": f"Bearer {grant.token}"}
        )
        assert spent.status_code == 200

    def order_route(self, order_id: str) -> str:
        return f"GET /orders/{order_id}"


async def patch_config(env: MLEnv, **changes: Any) -> dict[str, Any]:
    response = await env.admin.patch("/_sandbox/config", json=changes)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@asynccontextmanager
async def ml_env(
    *,
    pkce: bool = True,
    settings: Settings | None = None,
    callback: Callback | None = None,
    callback_ip: str = ML_SOURCE_IP,
    read_timeout: float = 0.5,
) -> AsyncIterator[MLEnv]:
    """A fresh sandbox with one app, two sellers and notifications pointed at ``callback``."""
    callback = callback or Callback()
    notify_transport = TimeoutASGITransport(app=callback, client=(callback_ip, 443))
    app = create_app(notify_transport=notify_transport)
    sandbox = sandbox_of(app)
    admin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=SANDBOX_BASE, follow_redirects=False
    )
    http = httpx.AsyncClient(
        transport=TimeoutASGITransport(app=app), timeout=httpx.Timeout(read_timeout)
    )
    try:
        for body in (
            {"user_id": SELLER_ID, "nickname": "TIENDA_CONEXAPI", "site_id": "MCO"},
            {"user_id": OTHER_SELLER_ID, "nickname": "OTRA_TIENDA", "site_id": "MCO"},
        ):
            assert (await admin.post("/_sandbox/sellers", json=body)).status_code == 201
        app_body = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "pkce": pkce,
        }
        assert (await admin.post("/_sandbox/apps", json=app_body)).status_code == 201
        target = {
            "callback_url": CALLBACK_URL,
            "application_id": CLIENT_ID,
            "topics": ["orders_v2", "payments", "items"],
        }
        assert (await admin.put("/_sandbox/notifications", json=target)).status_code == 200
        connector = factory(http, settings or ml_settings(), NoLimit())
        yield MLEnv(app, sandbox, admin, http, connector, callback)
    finally:
        await sandbox.notifier.aclose()
        await http.aclose()
        await admin.aclose()


# --- respx order payloads (the connector tests) ------------------------------------------

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


def mock_order(order: dict[str, Any], billing: dict[str, Any] | None = None, **kw: Any) -> None:
    respx.get(f"{API}/orders/{order['id']}").respond(json=order, **kw)
    if billing is not None:
        respx.get(f"{API}/orders/billing-info/MCO/{BILLING_ID}").respond(json=billing)


# --- the sandbox's OAuth over raw HTTP (test_sandbox*.py) --------------------------------

VERIFIER = "v" * 43 + "-verifier_0123456789"


def challenge(verifier: str = VERIFIER) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_query(**overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "st-1",
        "code_challenge": challenge(),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def redirect_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def get_code(env: MLEnv, user_id: int = SELLER_ID, **overrides: str) -> str:
    response = await env.admin.get(
        f"/authorization?{auth_query(**overrides)}&auto_consent={user_id}"
    )
    assert response.status_code == 302, response.text
    return redirect_query(response.headers["location"])["code"]


async def token_call(env: MLEnv, **form: str) -> Any:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return await env.admin.post("/oauth/token", data=body)


async def exchange(env: MLEnv, code: str, verifier: str = VERIFIER) -> Any:
    return await token_call(
        env,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    )


async def bearer(env: MLEnv, user_id: int = SELLER_ID) -> dict[str, str]:
    tokens = await env.tokens(user_id)
    return {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
