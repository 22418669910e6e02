from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conexapi.models import MappingKind, PipelineStatus

# The pipeline settings are the ERP's: the first ERP's model is the only one so far.
from connectors.documents import PipelineRules
from connectors.registry import get_connector
from connectors.siigo.pipeline import PipelineSettings


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merchant_id: int
    name: str = Field(min_length=1, max_length=200)
    source_connection_id: int
    target_connection_id: int
    settings: PipelineSettings


class PipelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    merchant_id: int
    name: str
    source_connection_id: int
    target_connection_id: int
    status: PipelineStatus
    settings: PipelineSettings
    created_at: datetime
    updated_at: datetime


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: MappingKind
    source_value: str = Field(min_length=1, max_length=120)
    target_value: str = Field(min_length=1, max_length=120)


class MappingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    pipeline_id: int
    kind: MappingKind
    source_value: str
    target_value: str
    created_at: datetime


def erp_settings(connector: str, stored: Mapping[str, Any]) -> PipelineRules:
    """A pipeline's stored settings, read with the model its ERP connector declares."""
    model = get_connector(connector).pipeline_settings
    if model is None:
        raise ValueError(f"connector {connector!r} declares no pipeline settings")
    settings = model.model_validate(stored)
    if not isinstance(settings, PipelineRules):
        raise TypeError(f"{connector}'s pipeline settings lack invoice_on or max_retry_hours")
    return settings
