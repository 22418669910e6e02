"""The Mercado Libre sandbox keeps Mercado Libre's rules: OAuth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

import pytest

from connectors.errors import AuthError
from tests.connectors.mercadolibre.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SELLER_ID,
    VERIFIER,
    MLEnv,
    auth_query,
    exchange,
    get_code,
    ml_env,
    patch_config,
    redirect_query,
    token_call,
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
