"""Connector behaviour against respx: OAuth URLs, tokens and the seller's profile."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from connectors.base import NoLimit
from connectors.errors import AuthError, DataError
from connectors.mercadolibre import MercadoLibreConnector, factory
from tests.connectors.mercadolibre.fixtures import (
    API,
    CLIENT_ID,
    REDIRECT_URI,
    TOKEN,
    ml_settings,
)

# --- OAuth ---------------------------------------------------------------------------------


def test_authorization_url_uses_the_sites_host_and_pkce_s256(
    connector: MercadoLibreConnector,
) -> None:
    request = connector.authorization_request(state="abc")
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "auth.mercadolibre.com.co",
        "/authorization",
    )
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["state"] == "abc"
    assert query["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(request.code_verifier) <= 128
    other = connector.authorization_request(state="abc")
    assert other.code_verifier != request.code_verifier

    assert urlsplit(connector.authorization_request(state="s", site="MLB").url).netloc == (
        "auth.mercadolivre.com.br"
    )
    assert urlsplit(connector.authorization_request(state="s", site="mlc").url).netloc == (
        "auth.mercadolibre.cl"
    )
    with pytest.raises(DataError):
        connector.authorization_request(state="s", site="XXX")


def test_authorization_url_keeps_a_sandbox_base(http: httpx.AsyncClient) -> None:
    connector = factory(http, ml_settings(auth_url="http://127.0.0.1:8101/"), NoLimit())
    url = connector.authorization_request(state="s", site="MLM").url
    assert url.startswith("http://127.0.0.1:8101/authorization?")


@respx.mock
async def test_exchange_and_refresh_send_form_bodies(connector: MercadoLibreConnector) -> None:
    answer = {
        "access_token": "APP_USR-new",
        "token_type": "bearer",
        "expires_in": 21600,
        "scope": "offline_access read write",
        "user_id": 468424240,
        "refresh_token": "TG-new-468424240",
    }
    route = respx.post(f"{API}/oauth/token").respond(json=answer)
    before = datetime.now(UTC)
    tokens = await connector.exchange_code("TG-code-468424240", "verifier-123")
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent == {
        "grant_type": ["authorization_code"],
        "code": ["TG-code-468424240"],
        "redirect_uri": [REDIRECT_URI],
        "code_verifier": ["verifier-123"],
        "client_id": [CLIENT_ID],
        "client_secret": ["sandbox-secret-not-real"],
    }
    assert tokens.account_id == "468424240"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "TG-new-468424240"
    assert before + timedelta(seconds=21600) <= tokens.expires_at
    assert tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=21600)

    refreshed = await connector.refresh("TG-old")
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent["grant_type"] == ["refresh_token"]
    assert sent["refresh_token"] == ["TG-old"]
    assert refreshed.access_token.get_secret_value() == "APP_USR-new"


@respx.mock
async def test_lost_refresh_race_is_invalid_grant(connector: MercadoLibreConnector) -> None:
    respx.post(f"{API}/oauth/token").respond(
        400,
        json={
            "error_description": "Error validating grant. Your authorization code or refresh "
            "token may be expired or it was already used",
            "error": "invalid_grant",
            "status": 400,
            "cause": [],
        },
    )
    with pytest.raises(AuthError) as caught:
        await connector.refresh("TG-used")
    assert caught.value.code == "invalid_grant"


@respx.mock
async def test_profile(connector: MercadoLibreConnector) -> None:
    respx.get(f"{API}/users/me").respond(
        json={"id": 468424240, "nickname": "TIENDA", "site_id": "MCO"}
    )
    profile = await connector.get_profile(TOKEN)
    assert (profile.account_id, profile.nickname, profile.site) == ("468424240", "TIENDA", "MCO")
