"""Logins, refresh rotation, API keys: what works, and every way a credential is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conexapi.auth import tokens
from conexapi.models import ApiKey, AuditEntry, Merchant, Role, utcnow
from conexapi.settings import Settings
from tests.support.auth import PASSWORD, bearer, login, make_key, make_user, sessions_of


async def _merchant(client: httpx.AsyncClient, slug: str = "tienda") -> int:
    async with sessions_of(client)() as s:
        merchant = Merchant(name=slug, slug=slug)
        s.add(merchant)
        await s.commit()
        return merchant.id


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] in ("unauthorized", "invalid_credentials")


async def _me(client: httpx.AsyncClient, credential: str) -> httpx.Response:
    return await client.get("/api/v1/auth/me", headers=bearer(credential))


async def test_login_me_refresh_and_logout(app_client: httpx.AsyncClient) -> None:
    merchant = await _merchant(app_client)
    await make_user(sessions_of(app_client), "Ana@Tienda.co", Role.operator, [merchant])
    tokens_ = await login(app_client, "ana@tienda.co")
    assert tokens_["token_type"] == "bearer" and tokens_["expires_in"] == 900
    me = (await _me(app_client, tokens_["access_token"])).json()
    assert me == {
        "kind": "user",
        "id": me["id"],
        "label": "ana@tienda.co",
        "role": "operator",
        "merchant_ids": [merchant],
    }

    rotated = await app_client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens_["refresh_token"]},
    )
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens_["refresh_token"]
    assert (await _me(app_client, fresh["access_token"])).status_code == 200

    out = await app_client.post("/api/v1/auth/logout", headers=bearer(fresh["access_token"]))
    assert out.status_code == 204
    # Every token of that login stops working at once, the older access token included.
    _refused(await _me(app_client, fresh["access_token"]))
    _refused(await _me(app_client, tokens_["access_token"]))
    _refused(
        await app_client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
        )
    )
    async with sessions_of(app_client)() as s:
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["auth.login", "auth.logout"]


async def test_a_reused_refresh_token_ends_the_login(app_client: httpx.AsyncClient) -> None:
    await make_user(sessions_of(app_client), "admin@x.co", Role.admin)
    first = await login(app_client, "admin@x.co")
    second = (
        await app_client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
    ).json()
    stolen = await app_client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    _refused(stolen)
    # The legitimate holder is logged out too: the login is revoked.
    _refused(await _me(app_client, second["access_token"]))
    _refused(
        await app_client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        )
    )


async def test_wrong_passwords_and_unknown_users_are_refused_alike(
    app_client: httpx.AsyncClient,
) -> None:
    await make_user(sessions_of(app_client), "ops@x.co", Role.admin)
    wrong = await app_client.post(
        "/api/v1/auth/token", data={"username": "ops@x.co", "password": "not-the-password"}
    )
    unknown = await app_client.post(
        "/api/v1/auth/token", data={"username": "nobody@x.co", "password": PASSWORD}
    )
    _refused(wrong)
    _refused(unknown)
    assert wrong.json()["error"] == unknown.json()["error"]


async def test_a_disabled_user_is_refused_at_once(app_client: httpx.AsyncClient) -> None:
    sm = sessions_of(app_client)
    await make_user(sm, "admin@x.co", Role.admin)
    user_id = await make_user(sm, "leaving@x.co", Role.admin)
    admin = await login(app_client, "admin@x.co")
    leaving = await login(app_client, "leaving@x.co")
    off = await app_client.patch(
        f"/api/v1/users/{user_id}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert off.status_code == 200 and off.json()["is_active"] is False
    _refused(await _me(app_client, leaving["access_token"]))
    _refused(
        await app_client.post(
            "/api/v1/auth/token", data={"username": "leaving@x.co", "password": PASSWORD}
        )
    )


def _tamper(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{header}.{raw}.{signature}"


async def test_expired_tampered_and_foreign_access_tokens_are_refused(
    app_client: httpx.AsyncClient, app_settings: Settings
) -> None:
    sm = sessions_of(app_client)
    await make_user(sm, "viewer@x.co", Role.viewer, [await _merchant(app_client)])
    admin_id = await make_user(sm, "root@x.co", Role.admin)
    issued = await login(app_client, "viewer@x.co")
    token = issued["access_token"]
    assert (await _me(app_client, token)).status_code == 200

    # Promoting oneself in the payload breaks the signature.
    _refused(await _me(app_client, _tamper(token, sub=str(admin_id))))
    _refused(await _me(app_client, token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")))
    # alg=none.
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    _refused(await _me(app_client, f"{header}.{token.split('.')[1]}."))
    # Signed with another secret.
    other = app_settings.model_copy(update={"secret_key": type(app_settings.secret_key)("x" * 40)})
    session_id = int(issued["refresh_token"].split("_")[1])
    user_id = (await _me(app_client, token)).json()["id"]
    forged, _ = tokens.issue_access_token(other, user_id, session_id)
    _refused(await _me(app_client, forged))
    # Expired: issued long enough ago.
    old, _ = tokens.issue_access_token(
        app_settings, user_id, session_id, now=utcnow() - timedelta(hours=1)
    )
    _refused(await _me(app_client, old))
    # Garbage and nothing.
    _refused(await _me(app_client, "not-a-token"))
    _refused(await app_client.get("/api/v1/auth/me"))


async def test_api_keys_shown_once_scoped_and_revocable(app_client: httpx.AsyncClient) -> None:
    sm = sessions_of(app_client)
    merchant = await _merchant(app_client)
    other = await _merchant(app_client, "otra")
    admin = bearer(await make_key(sm, Role.admin))
    created = await app_client.post(
        "/api/v1/api-keys",
        json={"name": "bot", "role": "viewer", "merchant_ids": [merchant]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith(f"cxk_{body['prefix']}_")
    async with sm() as s:
        row = await s.get(ApiKey, body["id"])
        assert row is not None and key not in (row.key_hash, row.prefix)
    listed = (await app_client.get("/api/v1/api-keys", headers=admin)).json()
    assert all("key" not in item for item in listed["items"])
    assert key not in json.dumps(listed)

    both = await app_client.get("/api/v1/merchants", headers=bearer(key))
    assert [m["id"] for m in both.json()["items"]] == [merchant]
    via_header = await app_client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert via_header.json()["merchant_ids"] == [merchant]
    assert (
        await app_client.get(f"/api/v1/merchants/{other}", headers=bearer(key))
    ).status_code == 404

    revoked = await app_client.delete(f"/api/v1/api-keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    _refused(await _me(app_client, key))
    # A key with a changed character, and one whose prefix exists with another secret.
    _refused(await _me(app_client, key[:-1] + ("a" if key[-1] != "a" else "b")))
    short_lived = await app_client.post(
        "/api/v1/api-keys",
        json={
            "name": "short-lived",
            "role": "admin",
            "expires_at": (utcnow() + timedelta(hours=1)).isoformat(),
        },
        headers=admin,
    )
    assert short_lived.status_code == 201, short_lived.text
    assert (await _me(app_client, short_lived.json()["key"])).status_code == 200
    async with sm() as s:
        row = await s.get(ApiKey, short_lived.json()["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)  # its hour has passed
        await s.commit()
    _refused(await _me(app_client, short_lived.json()["key"]))


@pytest.mark.parametrize(
    "expires_at",
    [
        utcnow() - timedelta(seconds=1),  # already expired
        utcnow() - timedelta(days=3650),
        utcnow() + timedelta(days=731),  # past the longest lifetime
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
    ],
    ids=["a second ago", "ten years ago", "731 days ahead", "year 9999"],
)
async def test_a_key_expired_when_made_or_expiring_absurdly_late_is_refused(
    app_client: httpx.AsyncClient, expires_at: datetime
) -> None:
    admin = bearer(await make_key(sessions_of(app_client), Role.admin))
    response = await app_client.post(
        "/api/v1/api-keys",
        json={"name": "odd", "role": "admin", "expires_at": expires_at.isoformat()},
        headers=admin,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_expiry"
    assert "in the future and at most 730 days ahead" in error["message"]
    assert error["details"]["field"] == "expires_at"
    assert error["details"]["after"] < error["details"]["not_after"]
    async with sessions_of(app_client)() as s:
        assert await s.scalar(select(ApiKey).where(ApiKey.name == "odd")) is None
    # The bounds themselves are fine, and so is no expiry at all.
    for fine in (utcnow() + timedelta(minutes=1), utcnow() + timedelta(days=729), None):
        made = await app_client.post(
            "/api/v1/api-keys",
            json={"name": "fine", "role": "admin", "expires_at": fine and fine.isoformat()},
            headers=admin,
        )
        assert made.status_code == 201, made.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "operator"},  # an operator key needs a merchant
        {"name": "x", "role": "viewer", "merchant_ids": [999]},  # unknown merchant
    ],
)
async def test_key_scopes_are_checked(app_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    admin = bearer(await make_key(sessions_of(app_client), Role.admin))
    response = await app_client.post("/api/v1/api-keys", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("validation_error", "unknown_merchant")


async def test_login_and_refresh_take_a_json_body_as_well_as_the_form(
    app_client: httpx.AsyncClient,
) -> None:
    await make_user(sessions_of(app_client), "ops@x.co", Role.admin)
    as_json = await app_client.post(
        "/api/v1/auth/token",
        json={"username": "ops@x.co", "password": PASSWORD, "scope": "ignored"},
    )
    assert as_json.status_code == 200, as_json.text
    tokens_ = as_json.json()
    assert (await _me(app_client, tokens_["access_token"])).json()["label"] == "ops@x.co"
    rotated = await app_client.post(
        "/api/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": tokens_["refresh_token"]},
    )
    assert rotated.status_code == 200, rotated.text
    assert (await _me(app_client, rotated.json()["access_token"])).status_code == 200
    # The same checks as the form: a wrong password is a 401, not a 422.
    _refused(
        await app_client.post(
            "/api/v1/auth/token", json={"username": "ops@x.co", "password": "not-the-password"}
        )
    )
    # And the form still works (what OAuth2 clients and the docs page send).
    assert (await login(app_client, "ops@x.co"))["token_type"] == "bearer"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"username": "ops@x.co"', "application/json", 400, "malformed_json"),
        (b'{"username": "ops@x.co", "password": NaN}', "application/json", 422, None),
        (b'["ops@x.co", "pw"]', "application/json", 422, "validation_error"),
        (b'{"username": 5, "password": "pw"}', "application/json", 422, "validation_error"),
        (b'{"grant_type": "implicit"}', "application/json", 422, "validation_error"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "body_too_deep"),
        ('{"username": "ops@x.co"}'.encode("utf-16"), "application/json", 400, "malformed_json"),
        (b"username=ops@x.co&password=pw", "text/plain", 415, "unsupported_media_type"),
        (b"{}", "application/json", 422, "validation_error"),
    ],
)
async def test_bad_token_bodies_get_the_envelope(
    app_client: httpx.AsyncClient, content: bytes, content_type: str, status: int, code: str | None
) -> None:
    response = await app_client.post(
        "/api/v1/auth/token", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["request_id"]
    if code:
        assert body["error"]["code"] == code
    assert "pw" not in response.text


async def test_the_token_operation_documents_both_body_types(app_client: httpx.AsyncClient) -> None:
    schema = (await app_client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/v1/auth/token"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    for media in content.values():
        properties = media["schema"]["properties"]
        assert set(properties) == {"grant_type", "username", "password", "refresh_token"}
    assert {"400", "401", "415", "422", "429"} <= set(operation["responses"])
