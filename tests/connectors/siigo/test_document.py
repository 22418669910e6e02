"""Siigo builds its own document: the spec declares the pipeline settings it needs."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from pydantic import BaseModel

from conexapi.pipelines.schemas import erp_settings
from connectors.documents import Mappings
from connectors.models import ErpCredentials
from connectors.registry import get_connector
from connectors.siigo import SiigoConnector
from connectors.siigo.pipeline import PipelineSettings


def test_the_spec_declares_siigos_pipeline_settings() -> None:
    assert get_connector("siigo").pipeline_settings is PipelineSettings
    assert get_connector("mercadolibre").pipeline_settings is None


async def test_another_settings_model_is_refused() -> None:
    class Other(BaseModel):
        pass

    async with httpx.AsyncClient() as http:
        siigo = SiigoConnector(http, base_url="http://siigo.test", partner_id="test")
        with pytest.raises(TypeError):
            siigo.build_document(None, Other(), Mappings(), date(2026, 3, 1))  # type: ignore[arg-type]


async def test_one_api_user_is_one_company() -> None:
    async with httpx.AsyncClient() as http:
        siigo = SiigoConnector(http, base_url="http://siigo.test", partner_id="test")
        credentials = ErpCredentials(username="Api@Shop.CO", access_key="k")
        assert siigo.account_id(credentials) == "api@shop.co"


def test_the_core_reads_stored_settings_with_the_erps_own_model() -> None:
    stored = {"document_type_id": "1", "seller_id": "2", "payment_type_id": "3", "tax_id": "4"}
    settings = erp_settings("siigo", stored)
    assert isinstance(settings, PipelineSettings)
    assert (settings.invoice_on, settings.max_retry_hours) == ("paid", 48)
    with pytest.raises(ValueError):
        erp_settings("mercadolibre", stored)  # a marketplace declares none
