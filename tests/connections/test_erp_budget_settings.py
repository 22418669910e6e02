"""An ERP connection's request budget: the company's mode named when linking (Siigo's API
cannot say it), a budget of the connection's own, both changeable, validated, and what the
pipeline then paces the company's calls at."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from conexapi.kit.resources import open_resources
from conexapi.models import Connection
from conexapi.settings import Settings, get_settings
from conexapi.sync.context import SyncContext
from connectors.models import RateBudget
from tests.connections.flow import Sessions, count_connections, new_merchant
from tests.connections.sandboxes import admin

USERNAME = "api@pruebas.com.co"
ACCESS_KEY = "NDllMzI0NmEtNjExZC00NGM3LWE3OTQtMWUyNTNlZWU0ZTM0OkosU2MwLD4xQ08="


#: Siigo's window, shortened so that linking the test company twice takes no minutes.
WINDOW = 0.6


@pytest.fixture
def app_settings(app_settings: Settings) -> Settings:
    siigo = app_settings.connectors["siigo"].model_copy(update={"rate_window_seconds": WINDOW})
    return app_settings.model_copy(
        update={"connectors": {**app_settings.connectors, "siigo": siigo}}
    )


@pytest.fixture
def worker_environment(key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A worker reads its key ring from its environment (cached, hence the clears)."""
    monkeypatch.setenv("CONEXAPI_ENCRYPTION_KEYS", key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def paced_at(settings: Settings, sessions: Sessions, connection_id: int) -> RateBudget:
    """The budget a worker's run gives the company's calls, from the connection as stored."""
    res = await open_resources(settings)
    try:
        async with sessions() as session:
            conn = await session.scalar(select(Connection).where(Connection.id == connection_id))
        assert conn is not None
        credentials = await SyncContext.of(res).erp_credentials(conn)
        assert credentials.budget is not None
        return credentials.budget
    finally:
        await res.aclose()


async def test_a_test_company_is_linked_in_test_mode_and_its_budget_can_be_set(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    app_db: Sessions,
    siigo_sandbox: str,
    worker_environment: None,
) -> None:
    admin(
        siigo_sandbox,
        "POST",
        "/_sandbox/companies",
        json={"username": USERNAME, "access_key": ACCESS_KEY, "mode": "test"},
    )
    headers = await new_merchant(app_client, "pruebas")
    link = {"username": USERNAME, "access_key": ACCESS_KEY}

    unknown = await app_client.post(
        "/api/v1/connections/siigo", json={**link, "mode": "sandbox"}, headers=headers
    )
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["code"] == "invalid_rate_settings"
    assert "production, test" in error["message"]
    assert error["details"]["allowed"] == ["production", "test"]
    zero = await app_client.post(
        "/api/v1/connections/siigo", json={**link, "requests_per_minute": 0}, headers=headers
    )
    assert zero.status_code == 422 and zero.json()["status"] == "error"
    assert await count_connections(app_db) == 0

    linked = await app_client.post(
        "/api/v1/connections/siigo", json={**link, "mode": "test"}, headers=headers
    )
    assert linked.status_code == 201, linked.text
    conn = linked.json()
    assert (conn["mode"], conn["requests_per_minute"]) == ("test", None)
    assert await paced_at(app_settings, app_db, conn["id"]) == RateBudget(
        requests=10, window_seconds=WINDOW
    )

    url = f"/api/v1/connections/{conn['id']}"
    own = await app_client.patch(url, json={"requests_per_minute": 6}, headers=headers)
    assert own.status_code == 200, own.text
    assert (own.json()["mode"], own.json()["requests_per_minute"]) == ("test", 6)
    assert (await paced_at(app_settings, app_db, conn["id"])).requests == 6

    for body, code in (
        ({}, "nothing_to_change"),
        ({"mode": "demo"}, "invalid_rate_settings"),
    ):
        refused = await app_client.patch(url, json=body, headers=headers)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code
        assert "mode" in refused.json()["error"]["message"]
    for body in ({"requests_per_minute": 0}, {"requests_per_minute": "many"}, {"speed": 1}):
        refused = await app_client.patch(url, json=body, headers=headers)
        assert refused.status_code == 422 and refused.json()["status"] == "error"

    # Back to the defaults: a production company's budget.
    reset = await app_client.patch(
        url, json={"mode": "production", "requests_per_minute": None}, headers=headers
    )
    assert reset.status_code == 200
    assert (reset.json()["mode"], reset.json()["requests_per_minute"]) == ("production", None)
    assert (await paced_at(app_settings, app_db, conn["id"])).requests == 100

    # Linking again without a mode keeps the one stored; with one, sets it.
    again = await app_client.post(
        "/api/v1/connections/siigo", json={**link, "mode": "test"}, headers=headers
    )
    assert again.json()["mode"] == "test"
    again = await app_client.post("/api/v1/connections/siigo", json=link, headers=headers)
    assert again.json()["id"] == conn["id"] and again.json()["mode"] == "test"


async def test_a_marketplace_connection_has_no_budget_to_set(
    app_client: httpx.AsyncClient, app_db: Sessions
) -> None:
    headers = await new_merchant(app_client, "tienda-ml")
    async with app_db() as session:
        conn = Connection(
            merchant_id=int(headers["X-Merchant-Id"]),
            connector="mercadolibre",
            external_account_id="123456",
            display_name="TIENDA",
        )
        session.add(conn)
        await session.commit()
    refused = await app_client.patch(
        f"/api/v1/connections/{conn.id}", json={"mode": "test"}, headers=headers
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_rate_settings"
    assert "only ERP connections" in refused.json()["error"]["message"]
