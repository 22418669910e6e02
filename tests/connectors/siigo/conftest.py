"""Fixtures shared by the Siigo connector tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from connectors.siigo.erp import SiigoConnector

# --- Siigo (fixtures live in fixtures.py) ---------------------------------------------
from tests.connectors.siigo.fixtures import (
    BASE,
    Clock,
    RecordingLimiter,
    siigo_account,
    siigo_harness,
    siigo_headers,
    siigo_sandbox,
)

__all__ = ["siigo_account", "siigo_harness", "siigo_headers", "siigo_sandbox"]
# --- end Siigo ------------------------------------------------------------------------

# --- the connector against respx (test_client*.py) ---------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def mocked() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        tokens = iter(f"tok-{n}" for n in range(1, 100))
        router.post("/auth", name="auth").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "access_token": next(tokens),
                    "expires_in": 86400,
                    "token_type": "Bearer",
                    "scope": "SiigoAPI",
                },
            )
        )
        yield router


@pytest.fixture
async def connector(clock: Clock, limiter: RecordingLimiter) -> AsyncIterator[SiigoConnector]:
    async with httpx.AsyncClient() as http:
        yield SiigoConnector(
            http,
            base_url=BASE,
            partner_id="ConexAPI",
            limiter=limiter,
            clock=clock,
            invoice_timeout=120.0,
            page_size=25,
        )
