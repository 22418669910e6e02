"""The marketplace contract, run for Mercado Libre against its sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.connectors.contract_marketplace import MarketplaceContract
from tests.connectors.ml_fixtures import MLEnv, ml_env


class TestMercadoLibreContract(MarketplaceContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[MLEnv]:
        async with ml_env() as env:
            yield env
