"""The Siigo connector's HTTP behaviour, against respx: tokens, headers and the limiter."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors.errors import RateLimited, TransientError
from connectors.models import (
    ErpCredentials,
    RateBudget,
)
from connectors.siigo import connector as siigo_spec
from connectors.siigo import factory
from connectors.siigo.erp import SiigoConnector
from tests.connectors.siigo.fixtures import (
    BASE,
    CREDS,
    OTHER,
    Clock,
    RecordingLimiter,
    products,
)

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
