"""Fixtures for the connections tests: a migrated database, a key ring, merchants."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker, unit_of_work
from conexapi.kit.crypto import KeyRing, generate_key
from conexapi.models import Merchant
from conexapi.settings import Settings
from tests.connections.fakes import AuthServer


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


_slugs = itertools.count(1)


async def make_merchant(sm: async_sessionmaker[AsyncSession], name: str = "Tienda") -> int:
    async with unit_of_work(sm) as session:
        merchant = Merchant(name=name, slug=f"m-{next(_slugs)}-{id(sm) % 10000}")
        session.add(merchant)
        await session.flush()
        return merchant.id


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
