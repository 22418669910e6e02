"""The doors that take credentials are rate-limited without handing anyone a switch that
turns a user off: password guesses per (address, account), per address and (throttle
only) per account; valid tokens and keys never refused; shared through Redis when there
is one. Every test here runs on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select
from starlette.exceptions import HTTPException

from conexapi.kit.resources import open_resources
from conexapi.models import AuthSession, Role
from conexapi.settings import Settings
from tests.support.auth import (
    PASSWORD,
    bearer,
    make_key,
    make_user,
    register,
    sessions_of,
)

WRONG = "wrong-password!"
PROXY = "10.1.2.3"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def app_settings(
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    migrated_db: object,
) -> Settings:
    await migrated_db(sqlite_url)  # type: ignore[operator]
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return settings_factory(
        redis_url=redis_url,
        # Windows far longer than a test, however loaded the machine.
        login_rate_limit="3/hour",
        login_address_rate_limit="6/hour",
        login_account_rate_limit="5/day",
        auth_failure_rate_limit="4/hour",
        trusted_proxies=f"{PROXY}, 10.9.0.0/16",
    )


ClientAt = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client_at(app: FastAPI, app_client: httpx.AsyncClient) -> AsyncIterator[ClientAt]:
    """``client_at(ip)``: a client of the running app whose connection comes from ``ip``."""
    async with AsyncExitStack() as stack:

        def make(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            stack.push_async_callback(client.aclose)
            register(client, app)
            return client

        yield make


async def _login(
    client: httpx.AsyncClient, email: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}, headers=headers
    )


async def test_logins_past_the_limit_get_429(app_client: httpx.AsyncClient) -> None:
    await make_user(sessions_of(app_client), "ops@x.co", Role.admin)
    codes = []
    for _ in range(3):
        response = await _login(app_client, "ops@x.co", WRONG)
        codes.append(response.status_code)
    assert codes == [401, 401, 401]
    # Even the right password waits now, from this address.
    blocked = await _login(app_client, "ops@x.co", PASSWORD)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 3600


async def test_an_attacker_flooding_admin_cannot_lock_the_admin_out(
    app_client: httpx.AsyncClient, client_at: ClientAt
) -> None:
    await make_user(sessions_of(app_client), "admin@x.co", Role.admin)
    await make_user(sessions_of(app_client), "colleague@x.co", Role.admin)
    attacker = client_at("198.51.100.66")
    flood = [(await _login(attacker, "admin@x.co", WRONG)).status_code for _ in range(20)]
    assert flood == [401] * 3 + [429] * 17  # each attempt answered, most refused unchecked

    # The admin, from another address, logs in at the first try.
    admin = client_at("203.0.113.10")
    assert (await _login(admin, "admin@x.co", PASSWORD)).status_code == 200
    # Someone else behind the attacker's address still logs in to their own account.
    neighbour = client_at("198.51.100.66")
    assert (await _login(neighbour, "colleague@x.co", PASSWORD)).status_code == 200

    # More addresses guessing: 5 failures on the account, its limit. From now on it is
    # throttled, never locked: an address that just failed gets no second try...
    for n in (1, 2):
        assert (await _login(client_at(f"198.51.100.{n}"), "admin@x.co", WRONG)).status_code == 401
    assert (await _login(client_at("198.51.100.1"), "admin@x.co", WRONG)).status_code == 429
    # ...while the right password from an address that has not been guessing still works.
    assert (await _login(client_at("203.0.113.11"), "admin@x.co", PASSWORD)).status_code == 200


async def test_failures_from_an_address_never_refuse_its_valid_tokens(
    app_client: httpx.AsyncClient, client_at: ClientAt
) -> None:
    sm = sessions_of(app_client)
    await make_user(sm, "admin@x.co", Role.admin)
    key = await make_key(sm, Role.admin)
    shared = client_at("192.0.2.44")  # e.g. an office behind one address
    logged_in = await _login(shared, "admin@x.co", PASSWORD)
    assert logged_in.status_code == 200
    tokens = logged_in.json()

    # Bad passwords until every login door of this address is shut...
    for email in ("admin@x.co", "ghost@x.co", "nobody@x.co"):
        for _ in range(3):
            await _login(shared, email, WRONG)
    assert (await _login(shared, "admin@x.co", PASSWORD)).status_code == 429
    # ...and bad tokens past their own limit.
    forged = bearer("cxk_aaaaaaaaaaaa_" + "x" * 43)
    bad = [(await shared.get("/api/v1/auth/me", headers=forged)).status_code for _ in range(6)]
    assert bad == [401] * 4 + [429] * 2
    bad_refresh = await shared.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert bad_refresh.status_code == 429

    # The valid access token, API key and refresh token from that address still work.
    for credential in (tokens["access_token"], key):
        me = await shared.get("/api/v1/auth/me", headers=bearer(credential))
        assert me.status_code == 200, me.text
    assert (await shared.get("/api/v1/auth/me", headers={"X-API-Key": key})).status_code == 200
    refreshed = await shared.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    app_client: httpx.AsyncClient, client_at: ClientAt
) -> None:
    sm = sessions_of(app_client)
    await make_user(sm, "admin@x.co", Role.admin)
    proxy = client_at(PROXY)

    # Through a trusted proxy each client is itself, read right to left: what the client
    # wrote into the header itself (6.6.6.6) is not believed.
    attacker = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}
    for _ in range(3):
        assert (await _login(proxy, "admin@x.co", WRONG, **attacker)).status_code == 401
    assert (await _login(proxy, "admin@x.co", PASSWORD, **attacker)).status_code == 429
    # Another client behind the same proxy is not locked out with the attacker.
    admin = {"X-Forwarded-For": "203.0.113.5"}
    assert (await _login(proxy, "admin@x.co", PASSWORD, **admin)).status_code == 200
    # Two trusted hops (a load balancer in 10.9.0.0/16 behind the proxy).
    hops = {"X-Forwarded-For": "203.0.113.6, 10.9.4.4"}
    assert (await _login(proxy, "admin@x.co", PASSWORD, **hops)).status_code == 200

    # From anyone else the header is ignored: a spoofed address per request evades nothing.
    await make_user(sm, "ops@x.co", Role.admin)
    direct = client_at("198.51.100.99")
    codes = [
        (await _login(direct, "ops@x.co", WRONG, **{"X-Forwarded-For": f"192.0.2.{n}"})).status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    assert (
        await _login(direct, "ops@x.co", PASSWORD, **{"X-Forwarded-For": "203.0.113.5"})
    ).status_code == 429

    async with sm() as session:
        seen = list(await session.scalars(select(AuthSession.ip).order_by(AuthSession.id)))
    assert seen == ["203.0.113.5", "203.0.113.6"]


async def test_forwarded_for_is_ignored_by_default(
    settings_factory: Callable[..., Settings], sqlite_url: str, migrated_db: object
) -> None:
    from asgi_lifespan import LifespanManager

    from conexapi.app import create_app

    await migrated_db(sqlite_url)  # type: ignore[operator]
    settings = settings_factory()
    assert settings.trusted_proxies == ""
    app = create_app(settings, send_jobs=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            register(c, app)
            await make_user(sessions_of(c), "admin@x.co", Role.admin)
            response = await _login(c, "admin@x.co", PASSWORD, **{"X-Forwarded-For": "1.2.3.4"})
            assert response.status_code == 200
            async with sessions_of(c)() as session:
                assert await session.scalar(select(AuthSession.ip)) == "127.0.0.1"


@pytest.mark.parametrize(
    "bad",
    [
        {"trusted_proxies": "10.0.0.0/8, proxy.internal"},
        {"trusted_proxies": "*"},
        {"login_rate_limit": "ten a minute"},
        {"auth_failure_rate_limit": ""},
    ],
)
def test_malformed_settings_are_refused_at_startup(
    settings_factory: Callable[..., Settings], bad: dict[str, str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_factory(**bad)
    assert next(iter(bad)) in str(refused.value)


async def test_limits_are_shared_through_redis(
    settings_factory: Callable[..., Settings], redis_url: str
) -> None:
    """Two API processes (two resource sets) count against one limit."""
    settings = settings_factory(redis_url=redis_url)
    first, second = await open_resources(settings), await open_resources(settings)
    try:
        one = first.auth_limiter
        two = second.auth_limiter
        assert one is not two
        await one.hit("2/minute", "login-ip", "10.0.0.9")
        await two.hit("2/minute", "login-ip", "10.0.0.9")
        with pytest.raises(HTTPException) as refused:
            await one.hit("2/minute", "login-ip", "10.0.0.9")
        assert refused.value.status_code == 429
        # Another address is not affected.
        await two.hit("2/minute", "login-ip", "10.0.0.10")
    finally:
        await first.aclose()
        await second.aclose()
