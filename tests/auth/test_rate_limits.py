"""The doors that take credentials are rate-limited: per address and per account; shared
through Redis when there is one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.exceptions import HTTPException

from conexapi.auth.ratelimit import AuthRateLimiter
from conexapi.kit.resources import open_resources
from conexapi.models import Role
from conexapi.settings import Settings
from tests.auth.support import PASSWORD, make_user, sessions_of


@pytest.fixture
async def app_settings(
    settings_factory: Callable[..., Settings], sqlite_url: str, migrated_db: object
) -> Settings:
    await migrated_db(sqlite_url)  # type: ignore[operator]
    return settings_factory(login_rate_limit="3/minute", auth_failure_rate_limit="4/minute")


async def test_logins_past_the_limit_get_429(app_client: httpx.AsyncClient) -> None:
    await make_user(sessions_of(app_client), "ops@x.co", Role.admin)
    codes = []
    for _ in range(3):
        response = await app_client.post(
            "/api/v1/auth/token", data={"username": "ops@x.co", "password": "wrong-password!"}
        )
        codes.append(response.status_code)
    assert codes == [401, 401, 401]
    # Even the right password waits now.
    blocked = await app_client.post(
        "/api/v1/auth/token", data={"username": "ops@x.co", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60


async def test_bad_credentials_past_the_limit_get_429(app_client: httpx.AsyncClient) -> None:
    for _ in range(4):
        response = await app_client.get(
            "/api/v1/orders", headers={"Authorization": "Bearer cxk_aaaaaaaaaaaa_" + "x" * 43}
        )
        assert response.status_code == 401
    blocked = await app_client.get(
        "/api/v1/orders", headers={"Authorization": "Bearer cxk_aaaaaaaaaaaa_" + "x" * 43}
    )
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "rate_limited"


async def test_limits_are_shared_through_redis(
    settings_factory: Callable[..., Settings], redis_url: str
) -> None:
    """Two API processes (two resource sets) count against one limit."""
    settings = settings_factory(redis_url=redis_url)
    first, second = await open_resources(settings), await open_resources(settings)
    try:
        one = AuthRateLimiter.for_resources(first)
        two = AuthRateLimiter.for_resources(second)
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
