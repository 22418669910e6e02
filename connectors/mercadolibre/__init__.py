"""Mercado Libre (site MCO first): orders in, with the buyer's fiscal identity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from connectors.base import ConnectorSpec, RateLimiter
from connectors.colombia.zone import TIME_ZONE
from connectors.mercadolibre.connector import MercadoLibreConfig, MercadoLibreConnector
from connectors.mercadolibre.settings import MercadoLibreSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conexapi.settings import Settings


def factory(
    http: httpx.AsyncClient, settings: Settings, limiter: RateLimiter
) -> MercadoLibreConnector:
    return MercadoLibreConnector(http, MercadoLibreConfig.from_settings(settings), limiter)


def sandbox_app() -> FastAPI:
    from connectors.mercadolibre.sandbox import create_app

    return create_app()


connector = ConnectorSpec(
    name="mercadolibre",
    label="Mercado Libre",
    kind="marketplace",
    factory=factory,
    sandbox_app=sandbox_app,
    settings=MercadoLibreSettings,
    description="Mercado Libre orders (OAuth 2.0 with PKCE, orders_v2 notifications)",
    # The Colombian site's (MCO), the one the product sells on so far.
    time_zone=TIME_ZONE,
)

__all__ = [
    "MercadoLibreConfig",
    "MercadoLibreConnector",
    "MercadoLibreSettings",
    "connector",
    "factory",
    "sandbox_app",
]
