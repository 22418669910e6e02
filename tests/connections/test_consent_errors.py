"""Every way a consent can go wrong ends in a clear message and no token stored."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.models import OAuthState
from conexapi.models.base import utcnow
from tests.connections.flow import (
    RETURN_ORIGIN,
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
from tests.support.auth import admin_headers


def page(response: httpx.Response, code: str) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text
    assert "location" not in response.headers
    return response.text


async def test_forged_or_missing_state(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "forged")
    real = consent(await start(app_client, headers, return_to=RETURN_TO))
    code = parse_qs(urlsplit(real).query)["code"][0]

    forged = await app_client.get(
        "/oauth/mercadolibre/callback", params={"code": code, "state": "A" * 48}
    )
    assert "not valid" in page(forged, "state_invalid")
    missing = await app_client.get("/oauth/mercadolibre/callback", params={"code": code})
    page(missing, "state_invalid")

    assert await count_connections(app_db) == 0
    assert token_requests(ml_sandbox, "authorization_code") == []


async def test_replayed_state(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "replay")
    url = consent(await start(app_client, headers, return_to=RETURN_TO))
    assert outcome(await callback(app_client, url))["status"] == "linked"

    replay = await callback(app_client, url)
    assert "already used" in page(replay, "state_replayed")
    assert len(token_requests(ml_sandbox, "authorization_code")) == 1
    assert await count_connections(app_db) == 1


async def test_expired_state(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "expired")
    url = consent(await start(app_client, headers, return_to=RETURN_TO))
    async with unit_of_work(app_db) as session:
        await session.execute(update(OAuthState).values(expires_at=utcnow()))

    response = await callback(app_client, url)
    assert "expired" in page(response, "state_expired")
    assert token_requests(ml_sandbox, "authorization_code") == []
    assert await count_connections(app_db) == 0


async def test_pkce_mismatch_fails_the_exchange(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int, keys: KeyRing
) -> None:
    headers = await new_merchant(app_client, "pkce")
    url = consent(await start(app_client, headers, return_to=RETURN_TO))
    # The verifier kept server-side no longer matches the challenge the consent carried.
    async with unit_of_work(app_db) as session:
        await session.execute(update(OAuthState).values(code_verifier=keys.encrypt_str("x" * 64)))

    result = outcome(await callback(app_client, url))
    assert result["status"] == "error" and result["error"] == "exchange_failed"
    exchanges = token_requests(ml_sandbox, "authorization_code")
    assert [r["status"] for r in exchanges] == [400]
    assert await count_connections(app_db) == 0
    async with app_db() as session:
        assert await session.scalar(select(OAuthState.outcome)) == "exchange_failed"


async def test_access_denied(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "denied")
    url = consent(await start(app_client, headers, return_to=RETURN_TO), deny=True)
    assert "error=access_denied" in url

    result = outcome(await callback(app_client, url))
    assert result["status"] == "error" and result["error"] == "access_denied"
    assert token_requests(ml_sandbox, "authorization_code") == []
    assert await count_connections(app_db) == 0


async def test_access_denied_without_return_to_shows_a_page(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "denied-page")
    url = consent(await start(app_client, headers), deny=True)
    text = page(await callback(app_client, url), "access_denied")
    assert "not granted" in text


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/settings",
        "https://merchant.example.evil.example/",
        "https://merchant.example@evil.example/",
        "http://merchant.example/settings",  # another scheme is another origin
        "https://merchant.example:8443/settings",
        "//evil.example/x",
        "javascript:alert(1)",
        "/relative/path",
    ],
)
async def test_return_to_outside_the_allowed_origins_is_refused(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, return_to: str
) -> None:
    headers = await new_merchant(app_client, "origins")
    response = await app_client.post(
        "/api/v1/connections/mercadolibre/authorize",
        json={"return_to": return_to},
        headers=headers,
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and body["error"]["code"] == "return_to_not_allowed"
    browser = await app_client.get(
        "/api/v1/connections/mercadolibre/authorize",
        params={"return_to": return_to},
        headers=headers,
    )
    assert browser.status_code == 400
    async with app_db() as session:
        assert await session.scalar(select(OAuthState.id)) is None


async def test_allowed_return_to_origins(app_client: httpx.AsyncClient, ml_sandbox: str) -> None:
    headers = await new_merchant(app_client, "allowed")
    for ok in (f"{RETURN_ORIGIN}/x?y=1", f"{RETURN_ORIGIN}:443/x", "http://testserver/done"):
        response = await app_client.post(
            "/api/v1/connections/mercadolibre/authorize", json={"return_to": ok}, headers=headers
        )
        assert response.status_code == 200, (ok, response.text)


async def test_browser_start_binds_the_consent_to_that_browser(
    app_client: httpx.AsyncClient, app_db: Sessions, ml_sandbox: str, seller: int
) -> None:
    headers = await new_merchant(app_client, "browser")

    started = await app_client.get(
        "/api/v1/connections/mercadolibre/authorize",
        params={"return_to": RETURN_TO},
        headers=headers,
    )
    assert started.status_code == 303
    assert started.headers["location"].startswith(ml_sandbox + "/authorization?")
    cookie = started.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/oauth/mercadolibre;" in cookie  # the consent link's page and the callback
    # The same browser (the client keeps the cookie) finishes it.
    linked = outcome(await callback(app_client, consent(started.headers["location"])))
    assert linked["status"] == "linked"

    # A consent started in one browser and finished in another (no cookie) is refused.
    other = await app_client.get(
        "/api/v1/connections/mercadolibre/authorize",
        params={"return_to": RETURN_TO},
        headers=headers,
    )
    app_client.cookies.clear()
    refused = await callback(app_client, consent(other.headers["location"]))
    assert "another browser" in page(refused, "state_browser_mismatch")
    assert len(token_requests(ml_sandbox, "authorization_code")) == 1


async def test_requests_without_a_merchant_are_refused(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/api/v1/connections/mercadolibre/authorize", json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    admin = await admin_headers(app_client)
    unknown = await app_client.post(
        "/api/v1/connections/mercadolibre/authorize",
        json={},
        headers={**admin, "X-Merchant-Id": "999"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    unnamed = await app_client.post(
        "/api/v1/connections/mercadolibre/authorize", json={}, headers=admin
    )
    assert unnamed.status_code == 422
    assert unnamed.json()["error"]["code"] == "merchant_required"
    headers = await new_merchant(app_client, "connector-check")
    nope = await app_client.post("/api/v1/connections/nosuch/authorize", json={}, headers=headers)
    assert nope.status_code == 404 and nope.json()["error"]["code"] == "unknown_connector"


@pytest.mark.parametrize("site", ["XXX", "MC0", "MCOX", "", "co"])
async def test_a_site_the_marketplace_does_not_have_is_a_422(
    app_client: httpx.AsyncClient, app_db: Sessions, site: str
) -> None:
    headers = await new_merchant(app_client, f"site-{site.lower() or 'empty'}")
    for where, response in (
        (
            "body",
            await app_client.post(
                "/api/v1/connections/mercadolibre/authorize", json={"site": site}, headers=headers
            ),
        ),
        (
            "query",
            await app_client.get(
                "/api/v1/connections/mercadolibre/authorize",
                params={"site": site},
                headers=headers,
            ),
        ),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert [e["loc"] for e in error["details"]["errors"]] == [[where, "site"]]
    async with app_db() as session:
        assert (await session.scalars(select(OAuthState))).all() == []


async def test_a_site_of_the_marketplace_is_taken_in_any_case(
    app_client: httpx.AsyncClient, app_db: Sessions
) -> None:
    headers = await new_merchant(app_client, "site-lower")
    for site in ("MLM", "mlm"):
        response = await app_client.post(
            "/api/v1/connections/mercadolibre/authorize", json={"site": site}, headers=headers
        )
        assert response.status_code == 200, response.text
