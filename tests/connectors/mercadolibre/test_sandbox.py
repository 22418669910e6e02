"""The Mercado Libre sandbox keeps Mercado Libre's rules: OAuth, orders, search, knobs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from connectors.errors import AuthError, DataError, TransientError
from tests.connectors.mercadolibre.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_SELLER_ID,
    REDIRECT_URI,
    SELLER_ID,
    MLEnv,
    ml_env,
    patch_config,
)

VERIFIER = "v" * 43 + "-verifier_0123456789"


def challenge(verifier: str = VERIFIER) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
async def env() -> AsyncIterator[MLEnv]:
    async with ml_env() as env:
        yield env


def auth_query(**overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "st-1",
        "code_challenge": challenge(),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def redirect_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def get_code(env: MLEnv, user_id: int = SELLER_ID, **overrides: str) -> str:
    response = await env.admin.get(
        f"/authorization?{auth_query(**overrides)}&auto_consent={user_id}"
    )
    assert response.status_code == 302, response.text
    return redirect_query(response.headers["location"])["code"]


async def token_call(env: MLEnv, **form: str) -> Any:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return await env.admin.post("/oauth/token", data=body)


async def exchange(env: MLEnv, code: str, verifier: str = VERIFIER) -> Any:
    return await token_call(
        env,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    )


# --- OAuth ---------------------------------------------------------------------------------


async def test_code_redirect_and_token_shape(env: MLEnv) -> None:
    code = await get_code(env)
    assert code.startswith("TG-") and code.endswith(f"-{SELLER_ID}")
    response = await exchange(env, code)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 21600
    assert body["user_id"] == SELLER_ID
    assert body["scope"] == "offline_access read write"
    assert body["access_token"].startswith(f"APP_USR-{CLIENT_ID}-")
    assert body["refresh_token"].startswith("TG-")


async def test_pkce_mismatch_and_missing_verifier(env: MLEnv) -> None:
    wrong = await exchange(env, await get_code(env), verifier="x" * 50)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    missing = await token_call(
        env, grant_type="authorization_code", code=await get_code(env), redirect_uri=REDIRECT_URI
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_pkce_app_refuses_a_request_without_challenge(env: MLEnv) -> None:
    response = await env.admin.get(
        f"/authorization?{auth_query(code_challenge='', code_challenge_method='')}"
        f"&auto_consent={SELLER_ID}"
    )
    assert response.status_code == 302
    query = redirect_query(response.headers["location"])
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-1"
    assert "code" not in query


async def test_plain_pkce_and_apps_without_pkce() -> None:
    async with ml_env(pkce=False) as env:
        plain = await get_code(env, code_challenge=VERIFIER, code_challenge_method="plain")
        assert (await exchange(env, plain)).status_code == 200
        bare = await get_code(env, code_challenge="", code_challenge_method="")
        response = await token_call(
            env, grant_type="authorization_code", code=bare, redirect_uri=REDIRECT_URI
        )
        assert response.status_code == 200


async def test_redirect_uri_must_match_exactly(env: MLEnv) -> None:
    for uri in (REDIRECT_URI + "/", REDIRECT_URI + "?x=1", REDIRECT_URI.upper()):
        response = await env.admin.get(
            f"/authorization?{auth_query(redirect_uri=uri)}&auto_consent={SELLER_ID}"
        )
        # Never redirected to an unregistered URI.
        assert response.status_code == 400
        assert "location" not in response.headers
    code = await get_code(env)
    response = await token_call(
        env,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI + "/other",
        code_verifier=VERIFIER,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "redirect_uri" in response.json()["error_description"]


async def test_unknown_client_and_bad_secret(env: MLEnv) -> None:
    response = await env.admin.get(f"/authorization?{auth_query(client_id='123')}")
    assert response.status_code == 400
    bad = await env.admin.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": "nope",
            "refresh_token": "TG-x",
        },
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client"


async def test_codes_are_single_use_and_expire(env: MLEnv) -> None:
    code = await get_code(env)
    assert (await exchange(env, code)).status_code == 200
    again = await exchange(env, code)
    assert again.status_code == 400
    assert again.json() == {
        "error_description": again.json()["message"],
        "message": again.json()["message"],
        "error": "invalid_grant",
        "status": 400,
        "cause": [],
    }
    await patch_config(env, code_ttl_seconds=0)
    assert (await exchange(env, await get_code(env))).json()["error"] == "invalid_grant"


async def test_parameters_must_be_in_the_body(env: MLEnv) -> None:
    code = await get_code(env)
    query = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        }
    )
    response = await env.admin.post(f"/oauth/token?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    unsupported = await token_call(env, grant_type="password")
    assert unsupported.json()["error"] == "unsupported_grant_type"


async def test_only_the_newest_refresh_token_works(env: MLEnv) -> None:
    first = (await exchange(env, await get_code(env))).json()
    # A second consent for the same seller and app issues a newer refresh token.
    second = (await exchange(env, await get_code(env))).json()
    stale = await token_call(env, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    fresh = await token_call(env, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert fresh.status_code == 200
    reused = await token_call(
        env, grant_type="refresh_token", refresh_token=second["refresh_token"]
    )
    assert reused.json()["error"] == "invalid_grant"


async def test_access_tokens_expire_after_expires_in(env: MLEnv) -> None:
    await patch_config(env, expires_in=0)
    tokens = await env.tokens()
    assert tokens.expires_at <= datetime.now(UTC)
    with pytest.raises(AuthError):
        await env.connector.get_profile(tokens.access_token.get_secret_value())
    await patch_config(env, expires_in=3600)
    tokens = await env.tokens()
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=59)
    assert (await env.connector.get_profile(tokens.access_token.get_secret_value())).account_id


async def test_revoked_seller_needs_reauth(env: MLEnv) -> None:
    tokens = await env.tokens()
    assert (await env.admin.post(f"/_sandbox/sellers/{SELLER_ID}/revoke")).json()["revoked"] >= 2
    with pytest.raises(AuthError):
        await env.connector.get_profile(tokens.access_token.get_secret_value())
    assert tokens.refresh_token is not None
    with pytest.raises(AuthError) as caught:
        await env.connector.refresh(tokens.refresh_token.get_secret_value())
    assert caught.value.code == "invalid_grant"


async def test_consent_page_and_denial(env: MLEnv) -> None:
    page = await env.admin.get(f"/authorization?{auth_query()}")
    assert page.status_code == 200
    assert "Allow" in page.text and "TIENDA_CONEXAPI" in page.text
    form = {k: v[0] for k, v in parse_qs(auth_query()).items()}
    allowed = await env.admin.post(
        "/authorization/decision", data={**form, "user_id": str(SELLER_ID), "decision": "allow"}
    )
    assert allowed.status_code == 302
    assert redirect_query(allowed.headers["location"])["code"].endswith(f"-{SELLER_ID}")
    denied = await env.admin.post(
        "/authorization/decision", data={**form, "user_id": str(SELLER_ID), "decision": "deny"}
    )
    assert redirect_query(denied.headers["location"]) == {
        "error": "access_denied",
        "error_description": "The user denied access",
        "state": "st-1",
    }
    auto = await env.admin.get(f"/authorization?{auth_query()}&auto_deny=1")
    assert redirect_query(auto.headers["location"])["error"] == "access_denied"
    unknown = await env.admin.get(f"/authorization?{auth_query()}&auto_consent=999")
    assert unknown.status_code == 400


# --- orders ----------------------------------------------------------------------------------


async def bearer(env: MLEnv, user_id: int = SELLER_ID) -> dict[str, str]:
    tokens = await env.tokens(user_id)
    return {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}


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
