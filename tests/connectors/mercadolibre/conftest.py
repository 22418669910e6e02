"""Fixtures shared by the Mercado Libre connector tests (pytest finds them; never import)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.base import NoLimit
from connectors.mercadolibre import MercadoLibreConnector, factory
from tests.connectors.mercadolibre.fixtures import API, ml_settings


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def connector(http: httpx.AsyncClient) -> MercadoLibreConnector:
    settings = ml_settings(api_url=API, auth_url="https://auth.mercadolibre.com.co")
    return factory(http, settings, NoLimit())
