"""``conexapi create-user``: the first admin, from the command line, who can then log in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conexapi.settings import Settings
from tests.support.auth import login


def _cli(db_url: str, *args: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update({"CONEXAPI_DATABASE_URL": db_url, "CONEXAPI_ENV": "test"})
    if password is not None:
        env["CONEXAPI_NEW_USER_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "conexapi.cli", "create-user", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
async def app_settings(
    settings_factory: Callable[..., Settings], sqlite_url: str, migrated_db: object
) -> Settings:
    await migrated_db(sqlite_url)  # type: ignore[operator]
    return settings_factory()


async def test_the_first_admin_is_created_and_logs_in(
    app_client: httpx.AsyncClient, sqlite_url: str
) -> None:
    done = _cli(sqlite_url, "--email", "Root@Tienda.co", password="a very good password")
    assert done.returncode == 0, done.stderr
    assert "a very good password" not in done.stdout + done.stderr
    tokens = await login(app_client, "root@tienda.co", "a very good password")
    me = await app_client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["role"] == "admin" and me.json()["merchant_ids"] is None
    audit = await app_client.get(
        "/api/v1/audit-log", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert [e["action"] for e in audit.json()["items"]] == ["auth.login", "user.create"]

    twice = _cli(sqlite_url, "--email", "root@tienda.co", password="a very good password")
    assert twice.returncode == 2 and "exists" in twice.stderr
    short = _cli(sqlite_url, "--email", "x@tienda.co", password="short")
    assert short.returncode == 2 and "10 characters" in short.stderr
    operator = _cli(
        sqlite_url, "--email", "op@tienda.co", "--role", "operator", password="long enough pw"
    )
    assert operator.returncode == 2 and "merchant" in operator.stderr
