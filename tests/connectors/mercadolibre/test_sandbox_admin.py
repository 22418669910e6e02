"""The Mercado Libre sandbox's admin routes: replayed orders, patches, reset, the request log."""

from __future__ import annotations

from datetime import datetime

from tests.connectors.mercadolibre.fixtures import (
    SELLER_ID,
    MLEnv,
    bearer,
    patch_config,
)

# --- admin -----------------------------------------------------------------------------------


async def test_replayed_order_round_trips_through_the_connector(env: MLEnv) -> None:
    order = {
        "id": 2000003508419013,
        "status": "paid",
        "date_created": "2026-01-27T10:01:50.000-04:00",
        "date_closed": "2026-01-27T10:04:07.000-04:00",
        "order_items": [
            {
                "item": {"id": "MCO12345678", "title": "Café", "seller_sku": "CAF-1"},
                "quantity": 3,
                "unit_price": 18900,
                "full_unit_price": 21000,
                "currency_id": "COP",
            }
        ],
        "total_amount": 56700,
        "currency_id": "COP",
        "buyer": {"id": 123},
        "seller": {"id": SELLER_ID},
        "payments": [
            {"id": 1, "status": "approved", "transaction_amount": 56700, "shipping_cost": 9900}
        ],
        "context": {"site": "MCO"},
    }
    billing = {
        "site_id": "MCO",
        "buyer": {
            "billing_info": {
                "name": "Ana",
                "last_name": "Torres",
                "identification": {"type": "CC", "number": "52111222"},
                "attributes": {"cust_type": "CO"},
            }
        },
    }
    created = await env.admin.post(
        "/_sandbox/orders", json={"order": order, "billing_info": billing}
    )
    assert created.status_code == 201
    assert created.json() == {"id": 2000003508419013}
    tokens = await env.tokens()
    got = await env.connector.fetch_order(
        tokens.access_token.get_secret_value(), "2000003508419013"
    )
    assert got.lines[0].sku == "CAF-1"
    assert got.shipping_cost == 9900
    assert (got.buyer.doc_number, got.buyer.last_name) == ("52111222", "Torres")
    assert got.updated_at is not None


async def test_patch_bumps_last_updated(env: MLEnv) -> None:
    [order_id] = await env.seed_orders(1, cancelled_rate=0.0, pending_rate=1.0)
    before = (await env.admin.get(f"/_sandbox/orders/{order_id}")).json()["order"]
    patched = await env.admin.patch(f"/_sandbox/orders/{order_id}", json={"status": "paid"})
    after = patched.json()["order"]
    assert after["status"] == "paid"
    assert datetime.fromisoformat(after["date_last_updated"]) > datetime.fromisoformat(
        before["date_last_updated"]
    )
    assert after["last_updated"] != before["last_updated"]
    assert after["id"] == before["id"]
    again = (await env.admin.patch(f"/_sandbox/orders/{order_id}", json={})).json()["order"]
    assert again["date_last_updated"] > after["date_last_updated"]
    assert (await env.admin.patch("/_sandbox/orders/1", json={})).status_code == 404


async def test_admin_rejects_orders_without_seller(env: MLEnv) -> None:
    response = await env.admin.post("/_sandbox/orders", json={"order": {"id": 5}})
    assert response.status_code == 400


async def test_reset_forgets_everything(env: MLEnv) -> None:
    await env.seed_orders(3)
    await patch_config(env, expires_in=5)
    assert (await env.admin.post("/_sandbox/reset")).status_code == 200
    assert (await env.admin.get("/_sandbox/orders")).json() == {"ids": []}
    assert (await env.admin.get("/_sandbox/sellers")).json() == []
    assert (await env.admin.get("/_sandbox/config")).json()["expires_in"] == 21600


async def test_requests_are_logged(env: MLEnv) -> None:
    await bearer(env)
    log = (await env.admin.get("/_sandbox/requests", params={"path": "/oauth/token"})).json()
    assert [e["status"] for e in log] == [200]
    assert "grant_type=authorization_code" in log[0]["body"]
    assert (await env.admin.get("/_sandbox/health")).json()["sandbox"] == "mercadolibre"
