"""Credentials for tests: an admin key for an app, users, logins, scoped keys."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.auth import service
from conexapi.db import unit_of_work
from conexapi.models import Role

Sessions = async_sessionmaker[AsyncSession]

_apps: weakref.WeakKeyDictionary[httpx.AsyncClient, FastAPI] = weakref.WeakKeyDictionary()
_admin: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[str, str]] = weakref.WeakKeyDictionary()

PASSWORD = "correct horse battery staple"


def register(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Remember which app a test client talks to (``app_client`` does it)."""
    _apps[client] = app


def bearer(credential: str, merchant_id: int | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {credential}"}
    if merchant_id is not None:
        headers["X-Merchant-Id"] = str(merchant_id)
    return headers


def sessions_of(client: httpx.AsyncClient) -> Sessions:
    sm: Sessions = _apps[client].state.resources.sessionmaker
    return sm


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """An admin API key for the app behind ``client``, made on first use."""
    if client not in _admin:
        key = await service.bootstrap_api_key(sessions_of(client), "tests-admin")
        _admin[client] = bearer(key)
    return dict(_admin[client])


async def make_key(
    sm: Sessions, role: Role, merchant_ids: Sequence[int] = (), name: str = "test-key"
) -> str:
    async with unit_of_work(sm) as session:
        _, key = await service.create_api_key(session, name, role, merchant_ids)
        return key


async def make_user(
    sm: Sessions,
    email: str,
    role: Role,
    merchant_ids: Sequence[int] = (),
    password: str = PASSWORD,
) -> int:
    async with unit_of_work(sm) as session:
        user = await service.create_user(session, email, password, role, merchant_ids)
        return user.id


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": password},
        **extra,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def scoped_headers(
    client: httpx.AsyncClient, merchant_id: int, role: Role = Role.operator
) -> dict[str, str]:
    """An API key of ``role`` that sees only ``merchant_id``, naming it as the merchant."""
    key = await make_key(sessions_of(client), role, [merchant_id], name=f"m{merchant_id}")
    return bearer(key, merchant_id)
