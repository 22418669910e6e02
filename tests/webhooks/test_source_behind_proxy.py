"""Behind a trusted reverse proxy the notification source check sees the sender's address
(the proxy's headers are read in front of the webhook fast path too), and nobody else's
X-Forwarded-For is believed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conexapi.settings import Settings
from tests.support.webhooks import APP_ID, SELLER, link_seller, note

MERCADOLIBRE = "54.88.218.97"
PROXY = "10.1.2.3"


@pytest.fixture
async def app_settings(
    settings_factory: Callable[..., Settings], migrated_db: Any, sqlite_url: str
) -> Settings:
    await migrated_db(sqlite_url)
    settings: Settings = settings_factory(
        connectors={"mercadolibre": {"client_id": APP_ID, "notification_ips": MERCADOLIBRE}},
        trusted_proxies=PROXY,
    )
    await link_seller(settings, str(SELLER))
    return settings


async def _post(app: FastAPI, peer: str, forwarded_for: str | None, order: int) -> str:
    """``accepted``, or the message of the refusal."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/webhooks/mercadolibre", json=note(resource=f"/orders/{order}"), headers=headers
        )
    if response.status_code == 200:
        return "accepted"
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]["message"]
    return message


async def test_the_source_check_sees_through_trusted_proxies_only(
    app: FastAPI, app_client: httpx.AsyncClient
) -> None:
    assert await _post(app, PROXY, MERCADOLIBRE, 2000000000000001) == "accepted"
    assert await _post(app, PROXY, f"6.6.6.6, {MERCADOLIBRE}", 2000000000000002) == "accepted"
    # The proxy itself is not Mercado Libre, nor is someone claiming to be.
    refused = [
        await _post(app, PROXY, None, 2000000000000003),
        await _post(app, "198.51.100.1", MERCADOLIBRE, 2000000000000004),
        await _post(app, PROXY, f"{MERCADOLIBRE}, 6.6.6.6", 2000000000000005),
    ]
    assert all("source address not allowed" in message for message in refused), refused
