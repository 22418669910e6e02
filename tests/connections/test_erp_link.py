"""Linking a Siigo company with its API user and access key, checked against the sandbox."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from conexapi.connections.errors import ConnectionDisconnected
from conexapi.connections.service import erp_credentials
from conexapi.kit.crypto import KeyRing
from conexapi.settings import Settings
from connectors.base import NoLimit
from connectors.siigo import factory as siigo_factory
from tests.connections.flow import (
    ACCESS_KEY,
    USERNAME,
    Sessions,
    count_connections,
    new_merchant,
)
from tests.connections.sandboxes import admin


def auth_calls(siigo: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = admin(
        siigo, "GET", "/_sandbox/requests", params={"path": "/auth"}
    )
    return found


async def test_siigo_credentials_are_checked_then_saved_encrypted(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    app_db: Sessions,
    siigo_sandbox: str,
    keys: KeyRing,
) -> None:
    admin(
        siigo_sandbox,
        "POST",
        "/_sandbox/companies",
        json={"username": USERNAME, "access_key": ACCESS_KEY, "mode": "production"},
    )
    headers = await new_merchant(app_client, "siigo-ok")

    wrong = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": "not-the-right-key"},
        headers=headers,
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "credentials_rejected"
    assert "not-the-right-key" not in wrong.text
    assert await count_connections(app_db) == 0

    created = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": ACCESS_KEY, "name": "Tienda SAS"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["connector"] == "siigo" and body["status"] == "active"
    assert body["display_name"] == "Tienda SAS" and body["external_account_id"] == USERNAME
    assert ACCESS_KEY not in created.text
    assert [c["status"] for c in auth_calls(siigo_sandbox)] == [401, 200]

    async with app_db() as session:
        raw = (await session.execute(text("SELECT credentials FROM connections"))).scalar_one()
        assert ACCESS_KEY not in raw and USERNAME not in raw
        creds = await erp_credentials(session, body["id"], keys=keys)
    assert creds.access_key.get_secret_value() == ACCESS_KEY

    # What the pipeline does with them: the connector authenticates and caches the session.
    async with httpx.AsyncClient() as http:
        connector = siigo_factory(http, app_settings, NoLimit())
        session_token = await connector.authenticate(creds)
        assert session_token.access_token.get_secret_value()

    # Same credentials again: the same connection; another merchant: refused.
    again = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
        headers=headers,
    )
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    other = await new_merchant(app_client, "siigo-other")
    refused = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
        headers=other,
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "account_linked_to_another_merchant"
    assert await count_connections(app_db) == 1


async def test_siigo_down_is_reported_as_unavailable(
    app_client: httpx.AsyncClient, app_db: Sessions, siigo_sandbox: str
) -> None:
    admin(siigo_sandbox, "PATCH", "/_sandbox/config", json={"outage": "503"})
    headers = await new_merchant(app_client, "siigo-down")
    response = await app_client.post(
        "/api/v1/connections/siigo",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
        headers=headers,
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert await count_connections(app_db) == 0


async def test_unlinking_through_the_api(
    app_client: httpx.AsyncClient, app_db: Sessions, siigo_sandbox: str, keys: KeyRing
) -> None:
    admin(
        siigo_sandbox,
        "POST",
        "/_sandbox/companies",
        json={"username": USERNAME, "access_key": ACCESS_KEY},
    )
    headers = await new_merchant(app_client, "unlink")
    created = (
        await app_client.post(
            "/api/v1/connections/siigo",
            json={"username": USERNAME, "access_key": ACCESS_KEY},
            headers=headers,
        )
    ).json()
    other = await new_merchant(app_client, "unlink-other")
    assert (
        await app_client.delete(f"/api/v1/connections/{created['id']}", headers=other)
    ).status_code == 404

    gone = await app_client.delete(f"/api/v1/connections/{created['id']}", headers=headers)
    assert gone.status_code == 200 and gone.json()["status"] == "disconnected"
    shown = (await app_client.get(f"/api/v1/connections/{created['id']}", headers=headers)).json()
    assert shown["status"] == "disconnected"
    async with app_db() as session:
        raw = (await session.execute(text("SELECT credentials FROM connections"))).scalar_one()
        assert raw is None
        with pytest.raises(ConnectionDisconnected):
            await erp_credentials(session, created["id"], keys=keys)
