"""Every HTTP outcome of the Mercado Libre client, mapped once to the error hierarchy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import (
    AuthError,
    ConnectorError,
    DataError,
    PermanentError,
    TransientError,
)
from connectors.mercadolibre.client import MercadoLibreClient, parse_retry_after
from connectors.models import RateBudget

API = "https://api.mercadolibre.test"
#: The longest wait a Retry-After gets (``connectors.http.MAX_RETRY_AFTER``).
DAY = 86400.0


class RecordingLimiter:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def acquire(self, key: str, budget: RateBudget) -> None:
        self.keys.append(key)

    async def push_back(self, key: str, seconds: float) -> None:
        return None


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def client(http: httpx.AsyncClient, limiter: RecordingLimiter) -> MercadoLibreClient:
    return MercadoLibreClient(http, API, limiter, limiter_key="mercadolibre:123")


def ml_body(status: int, error: str, message: str = "something", **extra: object) -> dict:
    return {"message": message, "error": error, "status": status, "cause": [], **extra}


async def fails(client: MercadoLibreClient) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        await client.request("GET", "/orders/1", what="order", token="APP_USR-x")
    return caught.value


@respx.mock
async def test_success_sends_bearer_uses_limiter_and_keeps_money_decimal(
    client: MercadoLibreClient, limiter: RecordingLimiter
) -> None:
    route = respx.get(f"{API}/orders/1").respond(
        200, json={"id": 1, "total_amount": 129.95}, headers={"x-request-id": "req-1"}
    )
    response = await client.request("GET", "/orders/1", what="order", token="APP_USR-abc")
    assert route.calls.last.request.headers["authorization"] == "Bearer APP_USR-abc"
    assert limiter.keys == ["mercadolibre:123"]
    assert response.data["total_amount"] == Decimal("129.95")
    assert isinstance(response.data["total_amount"], Decimal)
    assert response.request_id == "req-1"
    assert response.missing == ()


@respx.mock
async def test_206_lists_missing_parts(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").respond(
        206, json={"id": 1}, headers={"X-Content-Missing": "buyer, Shipping"}
    )
    response = await client.request("GET", "/orders/1", what="order", token="t")
    assert response.status_code == 206
    assert response.missing == ("buyer", "shipping")


@respx.mock
async def test_form_posts_go_in_the_body(client: MercadoLibreClient) -> None:
    route = respx.post(f"{API}/oauth/token").respond(200, json={"ok": True})
    await client.request(
        "POST", "/oauth/token", what="token", form={"grant_type": "refresh_token", "a": "b"}
    )
    request = route.calls.last.request
    assert request.url.query == b""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {"grant_type": ["refresh_token"], "a": ["b"]}
    assert "authorization" not in request.headers


@respx.mock
@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({}, None), ({"Retry-After": "soon"}, None)],
)
async def test_429_is_transient_with_retry_after(
    client: MercadoLibreClient, headers: dict[str, str], expected: float | None
) -> None:
    respx.get(f"{API}/orders/1").respond(
        429, json={"message": "local_rate_limited"}, headers={"x-request-id": "r429", **headers}
    )
    error = await fails(client)
    assert isinstance(error, TransientError)
    assert error.retry_after == expected
    assert error.code == "local_rate_limited"
    assert error.status_code == 429
    assert error.request_id == "r429"


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0


@respx.mock
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_5xx_and_408_are_transient(client: MercadoLibreClient, status: int) -> None:
    respx.get(f"{API}/orders/1").respond(
        status, json=ml_body(status, "internal_error"), headers={"x-request-id": "r5"}
    )
    error = await fails(client)
    assert isinstance(error, TransientError)
    assert error.status_code == status
    assert error.request_id == "r5"


@respx.mock
async def test_5xx_with_html_body_is_transient(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").respond(502, text="<html>Bad gateway</html>")
    error = await fails(client)
    assert isinstance(error, TransientError)
    assert error.code == "upstream_unavailable"


@respx.mock
@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.PoolTimeout("busy"), "timeout"),
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.ReadError("reset"), "connection_error"),
        (httpx.RemoteProtocolError("closed"), "connection_error"),
    ],
)
async def test_transport_failures_are_transient(
    client: MercadoLibreClient, exc: Exception, code: str
) -> None:
    respx.get(f"{API}/orders/1").mock(side_effect=exc)
    error = await fails(client)
    assert isinstance(error, TransientError)
    assert error.code == code
    assert error.status_code is None


@respx.mock
async def test_unsupported_protocol_is_permanent(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").mock(side_effect=httpx.UnsupportedProtocol("ftp"))
    assert isinstance(await fails(client), PermanentError)


@respx.mock
async def test_401_is_auth_even_with_mls_odd_error_code(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").respond(
        401,
        json={"message": "invalid access token", "error": "not_found", "status": 401},
        headers={"x-request-id": "r401"},
    )
    error = await fails(client)
    assert type(error) is AuthError
    assert error.code == "invalid_token"
    assert error.request_id == "r401"


@respx.mock
@pytest.mark.parametrize("code", ["invalid_grant", "invalid_token", "expired_token"])
async def test_oauth_grant_errors_are_auth_and_keep_their_code(
    client: MercadoLibreClient, code: str
) -> None:
    respx.get(f"{API}/orders/1").respond(
        400,
        json={"error_description": "Error validating grant", "error": code, "status": 400},
    )
    error = await fails(client)
    assert type(error) is AuthError
    assert error.code == code
    assert error.status_code == 400


@respx.mock
@pytest.mark.parametrize("code", ["invalid_client", "unauthorized_application"])
async def test_application_problems_are_permanent(client: MercadoLibreClient, code: str) -> None:
    respx.get(f"{API}/orders/1").respond(400, json=ml_body(400, code))
    error = await fails(client)
    assert type(error) is PermanentError
    assert error.code == code


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (404, ml_body(404, "order_not_found"), "order_not_found"),
        (403, ml_body(403, "not_owned_order"), "not_owned_order"),
        (
            403,
            {
                "message": "At least one policy returned UNAUTHORIZED.",
                "code": "PA_UNAUTHORIZED_RESULT_FROM_POLICIES",
                "blocked_by": "PolicyAgent",
                "status": 403,
            },
            "PA_UNAUTHORIZED_RESULT_FROM_POLICIES",
        ),
        (400, ml_body(400, "invalid_order_id"), "invalid_order_id"),
        (404, None, "http_404"),
    ],
)
async def test_4xx_are_data_errors(
    client: MercadoLibreClient, status: int, body: dict | None, code: str
) -> None:
    if body is None:
        respx.get(f"{API}/orders/1").respond(status)
    else:
        respx.get(f"{API}/orders/1").respond(status, json=body, headers={"x-request-id": "r4"})
    error = await fails(client)
    assert type(error) is DataError
    assert error.code == code
    assert error.status_code == status


@respx.mock
async def test_validation_cause_names_the_field(client: MercadoLibreClient) -> None:
    body = ml_body(
        400, "validation_error", cause=[{"code": "invalid", "references": ["order.date_created"]}]
    )
    respx.get(f"{API}/orders/1").respond(400, json=body)
    error = await fails(client)
    assert isinstance(error, DataError)
    assert error.field == "order.date_created"


@respx.mock
@pytest.mark.parametrize("status", [405, 410, 413])
async def test_other_4xx_are_permanent(client: MercadoLibreClient, status: int) -> None:
    respx.get(f"{API}/orders/1").respond(status, json=ml_body(status, "nope"))
    assert type(await fails(client)) is PermanentError


@respx.mock
async def test_2xx_that_is_not_json_is_transient(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").respond(200, text="<html>maintenance</html>")
    error = await fails(client)
    assert isinstance(error, TransientError)
    assert error.code == "invalid_response"


@respx.mock
async def test_error_messages_never_carry_the_token(client: MercadoLibreClient) -> None:
    respx.get(f"{API}/orders/1").respond(500, json=ml_body(500, "internal_error", "boom"))
    with pytest.raises(TransientError) as caught:
        await client.request("GET", "/orders/1", what="order", token="APP_USR-secret-token")
    assert "APP_USR-secret-token" not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.floats().map(repr),
        st.datetimes(timezones=st.timezones()).map(format_datetime),
        st.builds(
            "{}, {:02d} Jan {:04d} 00:00:00 {}{:04d}".format,
            st.sampled_from(["Mon", "Fri"]),
            st.integers(1, 31),
            st.integers(1, 9999),
            st.sampled_from("+-"),
            st.integers(0, 2359),
        ),
    )
)
def test_retry_after_is_a_bounded_number_of_seconds_or_none(value: str) -> None:
    seconds = parse_retry_after(value)
    if seconds is not None:
        assert 0.0 <= seconds <= DAY
        timedelta(seconds=seconds)  # what the runner makes of it


def test_retry_after_that_would_overflow_is_clamped() -> None:
    assert parse_retry_after("1e999") == DAY
    assert parse_retry_after("nan") is None
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 -2359") == DAY
    assert parse_retry_after("Mon, 01 Jan 0001 00:00:00 +1400") == 0.0
