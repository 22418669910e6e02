"""The product's timeout settings reach every call of the Siigo connector it builds."""

from __future__ import annotations

from typing import Any

import httpx
import respx
from pydantic import SecretStr

from conexapi.settings import Environment, Settings
from connectors.base import build
from connectors.models import ErpCredentials
from connectors.siigo import connector as siigo_spec
from tests.connectors.siigo.fixtures import blueprint_draft, invoice_json

BASE = "https://api.siigo.test"
CREDS = ErpCredentials(username="api@empresa.example", access_key=SecretStr("secret-key"))


async def test_documents_and_other_calls_use_the_configured_timeouts() -> None:
    settings = Settings(
        _env_file=None,
        env=Environment.test,
        connectors={"siigo": {"api_url": BASE}},
        http_timeout_seconds=7.0,
        erp_document_timeout_seconds=11.0,
    )
    seen: dict[str, dict[str, Any]] = {}

    def answer(status: int, body: Any) -> Any:
        def respond(request: httpx.Request) -> httpx.Response:
            seen[f"{request.method} {request.url.path}"] = request.extensions["timeout"]
            return httpx.Response(status, json=body)

        return respond

    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        router.post("/auth").mock(
            side_effect=answer(200, {"access_token": "tok", "expires_in": 86400})
        )
        router.get("/v1/customers").mock(
            side_effect=answer(200, {"pagination": {"total_results": 0}, "results": []})
        )
        router.post("/v1/invoices").mock(side_effect=answer(201, invoice_json()))
        async with httpx.AsyncClient() as http:
            siigo = build(siigo_spec, http, settings)
            assert await siigo.find_customer(CREDS, "13832081") is None
            await siigo.create_invoice(CREDS, blueprint_draft(), "ML2000003508419013")

    # Siigo's advice of long document creations is the setting's default, not a constant
    # the operator cannot change.
    assert seen["POST /v1/invoices"]["read"] == 11.0
    assert seen["POST /auth"]["read"] == 7.0
    assert seen["GET /v1/customers"]["read"] == 7.0
    assert Settings(_env_file=None, env=Environment.test).erp_document_timeout_seconds >= 120
