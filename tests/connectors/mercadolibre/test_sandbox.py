"""The Mercado Libre sandbox keeps Mercado Libre's rules: orders, search, billing info, knobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from connectors.errors import DataError, TransientError
from tests.connectors.mercadolibre.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_SELLER_ID,
    REDIRECT_URI,
    SELLER_ID,
    MLEnv,
    bearer,
    ml_env,
    patch_config,
)

# --- orders ----------------------------------------------------------------------------------


async def test_order_owner_and_errors(env: MLEnv) -> None:
    [order_id] = await env.seed_orders(1)
    other = await bearer(env, OTHER_SELLER_ID)
    forbidden = await env.admin.get(f"/orders/{order_id}", headers=other)
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "message": forbidden.json()["message"],
        "error": "not_owned_order",
        "status": 403,
        "cause": [],
    }
    mine = await bearer(env)
    missing = await env.admin.get("/orders/2000000000000001", headers=mine)
    assert (missing.status_code, missing.json()["error"]) == (404, "order_not_found")
    bad = await env.admin.get("/orders/12ab", headers=mine)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_order_id")
    assert (await env.admin.get(f"/orders/{order_id}")).status_code == 401
    unknown_route = await env.admin.get("/no/such/route", headers=mine)
    assert unknown_route.status_code == 404
    assert set(unknown_route.json()) == {"message", "error", "status", "cause"}

    # Through the connector: classified, with the upstream request id.
    token = mine["Authorization"][7:]
    with pytest.raises(DataError) as caught:
        await env.connector.fetch_order(other["Authorization"][7:], order_id)
    assert caught.value.code == "not_owned_order"
    assert caught.value.request_id
    with pytest.raises(DataError) as caught:
        await env.connector.fetch_order(token, "2000000000000001")
    assert caught.value.code == "order_not_found"


async def test_every_answer_has_a_request_id(env: MLEnv) -> None:
    [order_id] = await env.seed_orders(1)
    headers = await bearer(env)
    await patch_config(env, fail_next=[{"route": f"GET /orders/{order_id}", "status": 503}])
    for response in (
        await env.admin.get(f"/orders/{order_id}", headers=headers),  # injected 503
        await env.admin.get(f"/orders/{order_id}", headers=headers),
        await env.admin.get("/orders/1", headers={}),
        await env.admin.get("/_sandbox/health"),
    ):
        assert len(response.headers["x-request-id"]) >= 16
    ids = {
        r.headers["x-request-id"]
        for r in [await env.admin.get("/_sandbox/health"), await env.admin.get("/_sandbox/health")]
    }
    assert len(ids) == 2


async def test_search_rules(env: MLEnv) -> None:
    ids = await env.seed_orders(70, cancelled_rate=0.2)
    headers = await bearer(env)
    stored = {i: (await env.admin.get(f"/_sandbox/orders/{i}")).json()["order"] for i in ids}
    visible = {i for i, o in stored.items() if o["status"] != "cancelled"}
    cancelled = set(ids) - visible
    assert cancelled, "the mix produced cancellations"

    async def search(**params: Any) -> Any:
        return await env.admin.get(
            "/orders/search", params={"seller": SELLER_ID, **params}, headers=headers
        )

    page = (await search(limit=50)).json()
    assert page["paging"] == {"total": len(visible), "offset": 0, "limit": 50}
    assert {"results", "sort", "available_sorts", "filters", "display"} <= set(page)
    second = (await search(limit=50, offset=50)).json()
    got = {str(o["id"]) for o in page["results"] + second["results"]}
    assert got == visible  # cancelled ones are left out of a seller's search
    # Sellers' results are sorted by date_closed (date_created while not closed).
    closed = [
        datetime.fromisoformat(o["date_closed"] or o["date_created"])
        for o in page["results"] + second["results"]
    ]
    assert closed == sorted(closed)
    only_cancelled = (await search(**{"order.status": "cancelled"})).json()
    assert {str(o["id"]) for o in only_cancelled["results"]} == cancelled

    assert (await search(limit=51)).status_code == 400
    assert (await search(offset=-1)).status_code == 400
    other = await env.admin.get(
        "/orders/search", params={"seller": OTHER_SELLER_ID}, headers=headers
    )
    assert other.status_code == 403
    assert (await env.admin.get("/orders/search", headers=headers)).status_code == 400


async def test_search_date_filter_keeps_only_the_hour(env: MLEnv) -> None:
    headers = await bearer(env)
    base = {
        "seller": {"id": SELLER_ID},
        "status": "paid",
        "order_items": [],
        "total_amount": 0,
        "currency_id": "COP",
    }
    for oid, stamp in (
        (1001, "2026-03-02T15:10:00.000Z"),
        (1002, "2026-03-02T15:50:00.000Z"),
        (1003, "2026-03-02T16:20:00.000Z"),
    ):
        order = {**base, "id": oid, "date_last_updated": stamp}
        assert (await env.admin.post("/_sandbox/orders", json={"order": order})).status_code == 201
    response = await env.admin.get(
        "/orders/search",
        params={
            "seller": SELLER_ID,
            "order.date_last_updated.from": "2026-03-02T15:45:00.000-00:00",
            "order.date_last_updated.to": "2026-03-02T16:30:00.000-00:00",
        },
        headers=headers,
    )
    # from 15:45 → 15:00 and to 16:30 → 16:00: 16:20 falls out, 15:10 comes in.
    assert [o["id"] for o in response.json()["results"]] == [1001, 1002]


async def test_billing_info_route(env: MLEnv) -> None:
    [order_id] = await env.seed_orders(1)
    stored = (await env.admin.get(f"/_sandbox/orders/{order_id}")).json()
    billing_id = stored["order"]["buyer"]["billing_info"]["id"]
    headers = await bearer(env)
    ok = await env.admin.get(f"/orders/billing-info/MCO/{billing_id}", headers=headers)
    assert ok.status_code == 200
    assert ok.json() == stored["billing_info"]
    assert (
        await env.admin.get(f"/orders/billing-info/MLA/{billing_id}", headers=headers)
    ).status_code == 404
    other = await bearer(env, OTHER_SELLER_ID)
    assert (
        await env.admin.get(f"/orders/billing-info/MCO/{billing_id}", headers=other)
    ).status_code == 403


async def test_app_without_billing_permission() -> None:
    async with ml_env() as env:
        app = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "pkce": True,
            "billing_access": False,
        }
        assert (await env.admin.post("/_sandbox/apps", json=app)).status_code == 201
        [order_id] = await env.seed_orders(1)
        tokens = await env.tokens()
        with pytest.raises(DataError) as caught:
            await env.connector.fetch_order(tokens.access_token.get_secret_value(), order_id)
        assert caught.value.code == "PA_UNAUTHORIZED_RESULT_FROM_POLICIES"
        assert caught.value.status_code == 403


async def test_partial_content_knob(env: MLEnv) -> None:
    [order_id] = await env.seed_orders(1, processing_rate=0.0)
    tokens = await env.tokens()
    token = tokens.access_token.get_secret_value()
    await patch_config(env, partial_content=["buyer"], partial_content_times=1)
    raw = await env.admin.get(f"/orders/{order_id}", headers={"Authorization": f"Bearer {token}"})
    assert raw.status_code == 206
    assert raw.headers["x-content-missing"] == "buyer"
    assert "buyer" not in raw.json()
    await patch_config(env, partial_content=["buyer"], partial_content_times=1)
    partial = await env.connector.fetch_order(token, order_id)
    assert partial.buyer.complete is False
    full = await env.connector.fetch_order(token, order_id)  # the knob was used up
    assert full.buyer.complete is True
    await patch_config(env, partial_content=["seller"], partial_content_times=None)
    with pytest.raises(TransientError):
        await env.connector.fetch_order(token, order_id)


async def test_rate_limit_knob_is_per_application(env: MLEnv) -> None:
    headers = await bearer(env)
    await patch_config(env, rate_limit={"requests_per_minute": 2})
    assert (await env.admin.get("/users/me", headers=headers)).status_code == 200
    assert (await env.admin.get("/users/me", headers=headers)).status_code == 200
    limited = await env.admin.get("/users/me", headers=headers)
    assert limited.status_code == 429
    assert limited.json() == {
        "message": "local_rate_limited",
        "error": "local_rate_limited",
        "status": 429,
        "cause": [],
    }
    await patch_config(env, rate_limit={})
    assert (await env.admin.get("/users/me", headers=headers)).status_code == 200


async def test_injected_429_speaks_mercado_libre(env: MLEnv) -> None:
    headers = await bearer(env)
    await patch_config(env, fail_next=[{"route": "/users/me", "status": 429}])
    limited = await env.admin.get("/users/me", headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"] == "local_rate_limited"
