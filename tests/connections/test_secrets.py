"""No token or secret in the logs or in any API response of a full flow."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from sqlalchemy import select, update

from conexapi.connections.service import open_tokens
from conexapi.connections.tokens import TokenService
from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.kit.logging import configure_logging
from conexapi.models import Connection, OAuthState
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.base import NoLimit
from connectors.mercadolibre import factory as ml_factory
from tests.connections.flow import (
    ACCESS_KEY,
    ML_CLIENT_SECRET,
    RETURN_TO,
    USERNAME,
    Sessions,
    callback,
    consent,
    form,
    new_merchant,
    outcome,
    start,
)
from tests.connections.sandboxes import admin


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged, through the product's own logging pipeline (JSON, redacting)."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("DEBUG", json=True)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_config)


class Recorder:
    """Keeps every response the product's API gave during the test."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.responses.append(response)

    def text(self) -> str:
        return "\n".join(f"{r.status_code} {dict(r.headers)} {r.text}" for r in self.responses)


async def test_a_full_flow_leaks_no_secret(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    app_db: Sessions,
    ml_sandbox: str,
    siigo_sandbox: str,
    seller: int,
    keys: KeyRing,
    captured_logs: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    recorder = Recorder()
    app_client.event_hooks["response"].append(recorder)
    admin(
        siigo_sandbox,
        "POST",
        "/_sandbox/companies",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
    )
    headers = await new_merchant(app_client, "secrets")
    secrets: set[str] = {ML_CLIENT_SECRET, ACCESS_KEY}

    # Marketplace: a consent from the API and one from a browser, a denied one, a failed one.
    linked = outcome(
        await callback(app_client, consent(await start(app_client, headers, return_to=RETURN_TO)))
    )
    connection_id = int(linked["connection_id"])
    browser = await app_client.get(
        "/api/v1/connections/mercadolibre/authorize",
        params={"return_to": RETURN_TO},
        headers=headers,
    )
    assert (
        outcome(await callback(app_client, consent(browser.headers["location"])))["status"]
        == "linked"
    )
    denied = consent(await start(app_client, headers, return_to=RETURN_TO), deny=True)
    assert outcome(await callback(app_client, denied))["error"] == "access_denied"
    failing = consent(await start(app_client, headers, return_to=RETURN_TO))
    async with unit_of_work(app_db) as session:
        newest = await session.scalar(select(OAuthState.id).order_by(OAuthState.id.desc()))
        await session.execute(
            update(OAuthState)
            .where(OAuthState.id == newest)
            .values(code_verifier=keys.encrypt_str("y" * 64))
        )
    assert outcome(await callback(app_client, failing))["error"] == "exchange_failed"
    secrets.add(parse_qs(urlsplit(failing).query)["code"][0])

    # Tokens are handed out and refreshed.
    async with app_db() as session:
        conn = await session.get(Connection, connection_id)
        assert conn is not None and conn.credentials
        first = open_tokens(keys, conn.credentials)
    async with unit_of_work(app_db) as session:
        await session.execute(update(Connection).values(token_expires_at=utcnow()))
    async with httpx.AsyncClient() as http:
        tokens = TokenService(app_db, None, ml_factory(http, app_settings, NoLimit()), app_settings)
        refreshed = await tokens.access_token(connection_id)
    secrets |= {first.access_token, first.refresh_token or "", refreshed}
    async with app_db() as session:
        conn = await session.get(Connection, connection_id)
        assert conn is not None and conn.credentials
        secrets.add(open_tokens(keys, conn.credentials).refresh_token or "")

    # ERP: a rejected key, then the right one.
    wrong = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": "Wr0ng-Key-123456"},
        headers=headers,
    )
    assert wrong.status_code == 400
    secrets.add("Wr0ng-Key-123456")
    ok = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
        headers=headers,
    )
    assert ok.status_code == 201

    # The ops API views of all of it.
    await app_client.get("/api/v1/connections", headers=headers)
    await app_client.get(f"/api/v1/connections/{connection_id}", headers=headers)
    await app_client.delete(f"/api/v1/connections/{ok.json()['id']}", headers=headers)

    # Every secret that crossed the wire to the sandbox (codes, verifiers, refresh tokens).
    for request in admin(ml_sandbox, "GET", "/_sandbox/requests", params={"path": "/oauth/token"}):
        body = form(request)
        secrets |= {
            body.get(k, "") for k in ("code", "code_verifier", "refresh_token", "client_secret")
        }
    secrets.discard("")
    assert len(secrets) >= 10

    # Something that tries hard to log a token is redacted by the logging pipeline.
    structlog.get_logger("test").warning(
        "careless", access_token=refreshed, detail=f"Authorization: Bearer {refreshed}"
    )

    logs = captured_logs.getvalue() + "".join(capfd.readouterr())
    for event in (
        "consent_started",
        "connection_linked",
        "consent_finished",
        "token_refreshed",
        "careless",
    ):
        assert event in logs, f"{event} was not logged: the capture is not working"
    responses = recorder.text()
    assert len(recorder.responses) >= 12
    for secret in secrets:
        assert secret not in logs, "a secret reached the logs"
        assert secret not in responses, "a secret reached an API response"
