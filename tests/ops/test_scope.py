"""MerchantScope (the connections and reconciliation endpoints' dependency): authenticated,
tenant-scoped, role-checked, audited."""

from __future__ import annotations

import httpx

from tests.ops.world import World, all_items


async def test_writes_through_the_scope_are_audited_and_need_an_operator(
    app_client: httpx.AsyncClient, world: World
) -> None:
    url = "/api/v1/connections/mercadolibre/authorize"
    as_viewer = await app_client.post(url, json={}, headers=world.headers("viewer_a"))
    assert as_viewer.status_code == 403
    browser = await app_client.get(url, headers=world.headers("viewer_a"))
    assert browser.status_code == 403
    started = await app_client.post(url, json={}, headers=world.headers("operator_a"))
    assert started.status_code == 200, started.text
    entries = await all_items(
        app_client, "/api/v1/audit-log", world.headers("operator_a"), action="authorize"
    )
    assert len(entries) == 1
    assert entries[0]["merchant_id"] == world.a.merchant_id
    assert entries[0]["actor_type"] == "api_key"
    assert entries[0]["details"]["method"] == "POST"
    # The other merchant's operator sees none of it.
    theirs = await all_items(app_client, "/api/v1/audit-log", world.headers("operator_b"))
    assert all(e["merchant_id"] == world.b.merchant_id for e in theirs)


async def test_numbers_beyond_the_database_are_refused(
    app_client: httpx.AsyncClient, world: World
) -> None:
    huge = str(2**70)
    response = await app_client.get(
        "/api/v1/connections/mercadolibre/authorize",
        params={"site": "MCO", "n": huge},
        headers=world.headers("operator_a"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["param"] == "n"
