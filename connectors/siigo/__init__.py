"""Siigo Nube (Colombia) as the ERP: customers, products, catalogs and sales invoices
created exactly once under an Idempotency-Key, plus a faithful sandbox of the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from connectors.base import ConnectorSpec, RateLimiter
from connectors.colombia.zone import TIME_ZONE
from connectors.siigo.erp import SiigoConnector
from connectors.siigo.pipeline import PipelineSettings
from connectors.siigo.settings import SiigoSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conexapi.settings import Settings


def factory(http: httpx.AsyncClient, settings: Settings, limiter: RateLimiter) -> SiigoConnector:
    own = settings.connector("siigo", SiigoSettings)
    return SiigoConnector(
        http,
        requests_per_minute=own.requests_per_minute,
        rate_window_seconds=own.rate_window_seconds,
        base_url=own.api_url,
        partner_id=own.partner_id,
        limiter=limiter,
        timeout=settings.http_timeout_seconds,
        invoice_timeout=settings.erp_document_timeout_seconds,
    )


def sandbox_app() -> FastAPI:
    from connectors.siigo.sandbox import create_app

    return create_app()


connector = ConnectorSpec(
    name="siigo",
    label="Siigo Nube",
    kind="erp",
    factory=factory,
    sandbox_app=sandbox_app,
    description="Siigo Nube: sales invoices (FV) with DIAN stamping",
    pipeline_settings=PipelineSettings,
    settings=SiigoSettings,
    time_zone=TIME_ZONE,
)

__all__ = ["SiigoConnector", "SiigoSettings", "connector", "factory", "sandbox_app"]
