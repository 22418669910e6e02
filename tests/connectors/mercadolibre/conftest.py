"""Fixtures shared by the Mercado Libre tests (pytest finds them; never import a conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.base import NoLimit
from connectors.mercadolibre import MercadoLibreConnector, factory
from tests.connectors.mercadolibre.fixtures import API, MLEnv, ml_env, ml_settings


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def connector(http: httpx.AsyncClient) -> MercadoLibreConnector:
    settings = ml_settings(api_url=API, auth_url="https://auth.mercadolibre.com.co")
    return factory(http, settings, NoLimit())


@pytest.fixture
async def env() -> AsyncIterator[MLEnv]:
    async with ml_env() as env:
        yield env
