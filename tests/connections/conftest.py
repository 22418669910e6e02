"""Fixtures for the connections tests: a migrated database, a key ring, merchants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker
from conexapi.kit.crypto import KeyRing, generate_key
from conexapi.settings import Settings
from tests.connections.fakes import AuthServer, make_merchant
from tests.connections.flow import (
    CALLBACK,
    ML_CLIENT_ID,
    ML_CLIENT_SECRET,
    RETURN_ORIGIN,
    SELLER,
)
from tests.connections.sandboxes import admin, served


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def keys(key: str) -> KeyRing:
    return KeyRing([key])


@pytest.fixture
async def conn_settings(
    settings_factory: Callable[..., Settings], sqlite_url: str, migrated_db: Any, key: str
) -> Settings:
    await migrated_db(sqlite_url)
    return settings_factory(encryption_keys=SecretStr(key))


@pytest.fixture
async def sessionmaker(conn_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(conn_settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def merchant_factory(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[..., Awaitable[int]]:
    async def make(name: str = "Tienda") -> int:
        return await make_merchant(sessionmaker, name)

    return make


@pytest.fixture
def auth_server() -> AuthServer:
    return AuthServer()


# --- sandboxes and the application over them ----------------------------------------------


@pytest.fixture(scope="session")
def ml_sandbox_session() -> Iterator[str]:
    from connectors.mercadolibre import sandbox_app

    with served("mercadolibre", sandbox_app()) as url:
        yield url


@pytest.fixture(scope="session")
def siigo_sandbox_session() -> Iterator[str]:
    from connectors.siigo import sandbox_app

    with served("siigo", sandbox_app()) as url:
        yield url


@pytest.fixture
def ml_sandbox(ml_sandbox_session: str) -> str:
    """The Mercado Libre sandbox, reset, with this product's application registered."""
    admin(ml_sandbox_session, "POST", "/_sandbox/reset")
    admin(
        ml_sandbox_session,
        "POST",
        "/_sandbox/apps",
        json={
            "client_id": ML_CLIENT_ID,
            "client_secret": ML_CLIENT_SECRET,
            "redirect_uri": CALLBACK,
            "pkce": True,
        },
    )
    return ml_sandbox_session


@pytest.fixture
def siigo_sandbox(siigo_sandbox_session: str) -> str:
    admin(siigo_sandbox_session, "POST", "/_sandbox/reset")
    return siigo_sandbox_session


@pytest.fixture
async def app_settings(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    migrated_db: Any,
    key: str,
    ml_sandbox: str,
    siigo_sandbox: str,
) -> Settings:
    """Settings of the ``app``/``app_client`` fixtures: the sandboxes as upstream."""
    await migrated_db(sqlite_url)
    return settings_factory(
        encryption_keys=SecretStr(key),
        public_url="http://testserver",
        oauth_allowed_return_origins=RETURN_ORIGIN,
        connectors={
            "mercadolibre": {
                "api_url": ml_sandbox,
                "auth_url": ml_sandbox,
                "client_id": ML_CLIENT_ID,
                "client_secret": SecretStr(ML_CLIENT_SECRET),
                "redirect_uri": CALLBACK,
            },
            "siigo": {"api_url": siigo_sandbox},
        },
    )


@pytest.fixture
async def app_db(app_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session maker on the database of ``app``."""
    engine = create_engine(app_settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def seller(ml_sandbox: str) -> int:
    """A seller in the Mercado Libre sandbox who can consent."""
    admin(
        ml_sandbox, "POST", "/_sandbox/sellers", json={"user_id": SELLER, "nickname": "TIENDA_CO"}
    )
    return SELLER


@pytest.fixture
async def browsers(
    app: FastAPI, app_client: httpx.AsyncClient
) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """``browsers()``: another browser on the running app, with cookies of its own and no
    credentials of the ops API (a seller's, a link scanner's)."""
    async with AsyncExitStack() as stack:

        def make() -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            stack.push_async_callback(client.aclose)
            return client

        yield make
