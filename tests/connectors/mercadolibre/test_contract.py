"""The marketplace contract, run for Mercado Libre against its sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.base import build
from connectors.mercadolibre import MercadoLibreConnector
from connectors.registry import get_connector
from tests.connectors.contract_marketplace import MarketplaceContract
from tests.connectors.mercadolibre.fixtures import MLEnv, ml_env, ml_settings


class TestMercadoLibreContract(MarketplaceContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[MLEnv]:
        async with ml_env() as env:
            yield env


async def test_registered_under_its_entry_point() -> None:
    spec = get_connector("mercadolibre")
    assert spec.kind == "marketplace"
    async with httpx.AsyncClient() as http:
        assert isinstance(build(spec, http, ml_settings()), MercadoLibreConnector)
    app = spec.sandbox_app()
    paths = app.openapi()["paths"]
    assert {"/oauth/token", "/orders/{order_id}", "/_sandbox/orders/generate"} <= set(paths)
