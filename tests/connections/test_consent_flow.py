"""The consent through the real endpoints against the Mercado Libre sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, update

from conexapi.connections.tokens import TokenService
from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.models import Connection, OAuthState
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.base import NoLimit
from connectors.mercadolibre import factory as ml_factory
from tests.connections.flow import (
    RETURN_TO,
    Sessions,
    callback,
    consent,
    count_connections,
    new_merchant,
    outcome,
    start,
    token_requests,
)


async def test_full_consent_flow_links_refreshes_and_relinks(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    app_db: Sessions,
    ml_sandbox: str,
    seller: int,
    keys: KeyRing,
) -> None:
    headers = await new_merchant(app_client, "tienda-uno")
    url = await start(app_client, headers, return_to=RETURN_TO)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert len(query["state"][0]) >= 43

    result = outcome(await callback(app_client, consent(url)))
    assert result["status"] == "linked" and result["connector"] == "mercadolibre"
    assert result["tab"] == "ml"  # return_to's own query survives
    connection_id = int(result["connection_id"])

    listed = (await app_client.get("/api/v1/connections", headers=headers)).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"] is None
    item = listed["items"][0]
    assert item["id"] == connection_id and item["status"] == "active"
    assert item["external_account_id"] == str(seller) and item["display_name"] == "TIENDA_CO"
    assert not item["needs_reauth"]
    assert "credentials" not in item

    me = (await app_client.get("/api/v1/auth/me", headers=headers)).json()
    async with app_db() as session:
        state = await session.scalar(select(OAuthState))
        assert state is not None and state.consumed_at is not None
        assert state.outcome == "linked" and state.user_id == f"api_key:{me['id']}"

    # The stored token works, and an expired one is refreshed with the stored refresh token.
    async with httpx.AsyncClient() as http:
        connector = ml_factory(http, app_settings, NoLimit())
        tokens = TokenService(app_db, None, connector, app_settings)
        first = await tokens.access_token(connection_id)
        assert (await connector.get_profile(first)).account_id == str(seller)
        async with unit_of_work(app_db) as session:
            await session.execute(
                update(Connection)
                .values(token_expires_at=utcnow())
                .where(Connection.id == connection_id)
            )
        second = await tokens.access_token(connection_id)
        assert second != first
        assert (await connector.get_profile(second)).account_id == str(seller)
    refreshes = token_requests(ml_sandbox, "refresh_token")
    assert [r["status"] for r in refreshes] == [200]

    # Linking the same seller again updates the same connection.
    url = await start(app_client, headers, return_to=RETURN_TO)
    again = outcome(await callback(app_client, consent(url)))
    assert again["status"] == "linked" and int(again["connection_id"]) == connection_id
    assert await count_connections(app_db) == 1


async def test_a_seller_linked_to_another_merchant_is_refused_and_the_owner_keeps_working(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    app_db: Sessions,
    ml_sandbox: str,
    seller: int,
) -> None:
    owner = await new_merchant(app_client, "owner")
    intruder = await new_merchant(app_client, "intruder")
    linked = outcome(
        await callback(app_client, consent(await start(app_client, owner, return_to=RETURN_TO)))
    )
    owner_connection = int(linked["connection_id"])

    refused = outcome(
        await callback(app_client, consent(await start(app_client, intruder, return_to=RETURN_TO)))
    )
    assert refused == {
        "tab": "ml",
        "connector": "mercadolibre",
        "status": "error",
        "error": "account_linked_to_another_merchant",
    }
    mine = (await app_client.get("/api/v1/connections", headers=intruder)).json()
    assert mine["items"] == []
    assert await count_connections(app_db) == 1

    # The sandbox, like Mercado Libre, honours only the newest refresh token of a seller:
    # the owner's connection got the refused consent's pair and can still refresh.
    async with unit_of_work(app_db) as session:
        await session.execute(update(Connection).values(token_expires_at=utcnow()))
    async with httpx.AsyncClient() as http:
        tokens = TokenService(app_db, None, ml_factory(http, app_settings, NoLimit()), app_settings)
        assert await tokens.access_token(owner_connection)
    assert [r["status"] for r in token_requests(ml_sandbox, "refresh_token")] == [200]
    shown = (await app_client.get(f"/api/v1/connections/{owner_connection}", headers=owner)).json()
    assert shown["status"] == "active"
    # and the intruder cannot see it
    hidden = await app_client.get(f"/api/v1/connections/{owner_connection}", headers=intruder)
    assert hidden.status_code == 404
