"""Every Siigo answer the connector can get, mapped once to ``connectors.errors`` (respx)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors.errors import (
    AuthError,
    ConnectorError,
    DataError,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.models import ErpCredentials
from connectors.siigo.erp import SiigoConnector
from connectors.siigo.errors import parse_error_body, parse_retry_after

BASE = "https://api.siigo.test"
CREDS = ErpCredentials(username="api@empresa.example", access_key=SecretStr("secret-key"))


def siigo_error(status: int, code: str, message: str = "boom", *params: str) -> dict[str, Any]:
    return {
        "Status": status,
        "Errors": [{"Code": code, "Message": message, "Params": list(params), "Detail": "doc"}],
    }


@pytest.fixture
async def mocked() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/auth").respond(
            200, json={"access_token": "tok-1", "expires_in": 86400, "token_type": "Bearer"}
        )
        yield router


@pytest.fixture
async def connector() -> Any:
    async with httpx.AsyncClient() as http:
        yield SiigoConnector(http, base_url=BASE, partner_id="ConexAPI")


CASES = [
    # status, code, params, expected class, expected field
    (429, "requests_limit", [], RateLimited, None),
    (429, None, [], RateLimited, None),
    (400, "requests_limit", [], RateLimited, None),
    (408, "request_timeout", [], TransientError, None),
    (500, "unhandled_error", [], TransientError, None),
    (502, None, [], TransientError, None),
    (503, "service_unavailable", [], TransientError, None),
    (504, None, [], TransientError, None),
    (400, "documents_service", [], TransientError, None),
    (400, "payment_types_service", [], TransientError, None),
    (400, "general_service", [], TransientError, None),
    (400, "invalid_total_payments", ["payments"], DataError, "payments"),
    (400, "invalid_reference", ["items.code"], DataError, "items.code"),
    (400, "invalid_date", ["date"], DataError, "date"),
    (400, "invalid_idempotency-key", ["Idempotency-Key"], DataError, "Idempotency-Key"),
    (400, "parameter_required", ["seller"], DataError, "seller"),
    (400, "parameter_inactive", ["items.code"], DataError, "items.code"),
    (400, "already_exists", ["identification"], DataError, "identification"),
    (409, "duplicated_document", [], DataError, None),
    (400, "customer_settings", ["customer.identification"], DataError, "customer.identification"),
    (400, "document_settings", ["cost_center"], DataError, "cost_center"),
    (400, "length_max", ["observations"], DataError, "observations"),
    (404, "not_found", [], DataError, None),
    (400, "header_required", ["Partner-Id"], PermanentError, None),
    (400, "invalid_partner_id", ["Partner-Id"], PermanentError, None),
    (400, "disabled_functionality", [], PermanentError, None),
    (403, "forbidden", [], PermanentError, None),
    (415, None, [], PermanentError, None),
    (400, None, [], PermanentError, None),
]


@pytest.mark.parametrize(("status", "code", "params", "expected", "field"), CASES)
async def test_error_mapping(
    mocked: Any,
    connector: SiigoConnector,
    status: int,
    code: str | None,
    params: list[str],
    expected: type[ConnectorError],
    field: str | None,
) -> None:
    body = siigo_error(status, code, "Something is wrong", *params) if code else None
    mocked.get("/v1/products").respond(status, json=body, headers={"x-request-id": "upstream-42"})
    with pytest.raises(ConnectorError) as caught:
        await connector.find_product(CREDS, "SKU")
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    assert error.status_code == status
    assert error.request_id == "upstream-42"
    if code:
        assert "Something is wrong" in error.message
    if isinstance(error, DataError):
        assert error.field == field
    if isinstance(error, TransientError):
        assert error.retry_after is None  # Siigo sends no Retry-After


async def test_retry_after_is_honoured_when_present(mocked: Any, connector: SiigoConnector) -> None:
    mocked.get("/v1/products").respond(
        429, json=siigo_error(429, "requests_limit"), headers={"Retry-After": "7"}
    )
    with pytest.raises(TransientError) as caught:
        await connector.find_product(CREDS, "SKU")
    assert caught.value.retry_after == 7.0


async def test_401_twice_is_an_auth_error_after_one_reauth(
    mocked: Any, connector: SiigoConnector
) -> None:
    data = mocked.get("/v1/products").respond(401, json=siigo_error(401, "unauthorized"))
    with pytest.raises(AuthError) as caught:
        await connector.find_product(CREDS, "SKU")
    assert caught.value.code == "unauthorized"
    assert data.call_count == 2
    assert mocked.routes[0].call_count == 2  # /auth: the first token, then one renewal


async def test_bad_credentials_on_auth_are_an_auth_error(
    mocked: Any, connector: SiigoConnector
) -> None:
    mocked.routes[0].respond(401, json=siigo_error(401, "unauthorized", "Invalid credentials"))
    data = mocked.get("/v1/products").respond(200, json={"results": []})
    with pytest.raises(AuthError):
        await connector.find_product(CREDS, "SKU")
    assert not data.called


async def test_auth_answer_without_a_token_is_permanent(
    mocked: Any, connector: SiigoConnector
) -> None:
    mocked.routes[0].respond(200, json={"unexpected": True})
    with pytest.raises(PermanentError):
        await connector.authenticate(CREDS)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "network_error"),
        (httpx.RemoteProtocolError("dropped"), "network_error"),
    ],
)
async def test_network_failures_are_transient_with_our_request_id(
    mocked: Any, connector: SiigoConnector, exc: Exception, code: str
) -> None:
    route = mocked.get("/v1/products").mock(side_effect=exc)
    with pytest.raises(TransientError) as caught:
        await connector.find_product(CREDS, "SKU")
    assert caught.value.code == code
    sent = route.calls.last.request.headers["x-request-id"]
    assert caught.value.request_id == sent


async def test_request_id_falls_back_to_the_one_sent(
    mocked: Any, connector: SiigoConnector
) -> None:
    route = mocked.get("/v1/products").respond(503, text="upstream down")
    with pytest.raises(TransientError) as caught:
        await connector.find_product(CREDS, "SKU")
    assert caught.value.request_id == route.calls.last.request.headers["x-request-id"]
    assert "503" in caught.value.message


def test_parse_error_body_reads_both_casings() -> None:
    upper = parse_error_body(siigo_error(400, "invalid_code", "bad", "code"))
    lower = parse_error_body(
        {"status": 400, "errors": [{"code": "invalid_code", "message": "bad", "params": ["code"]}]}
    )
    assert upper[0].code == lower[0].code == "invalid_code"
    assert upper[0].params == lower[0].params == ("code",)
    assert parse_error_body({"unexpected": 1}) == []
    assert parse_error_body(["not", "a", "dict"]) == []


async def test_several_errors_keep_the_first_code_and_all_messages(
    mocked: Any, connector: SiigoConnector
) -> None:
    body = {
        "Status": 400,
        "Errors": [
            {"Code": "parameter_required", "Message": "seller is required", "Params": ["seller"]},
            {"Code": "invalid_reference", "Message": "no product X", "Params": ["items.code"]},
        ],
    }
    mocked.get("/v1/products").respond(400, json=body)
    with pytest.raises(DataError) as caught:
        await connector.find_product(CREDS, "SKU")
    assert caught.value.code == "parameter_required"
    assert caught.value.field == "seller"
    assert "seller is required" in caught.value.message
    assert "no product X" in caught.value.message


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
