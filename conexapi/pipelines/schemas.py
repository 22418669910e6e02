from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ConfigDict, Field

from conexapi.models import MappingKind, PipelineStatus
from connectors.documents import PipelineRules
from connectors.registry import all_connectors, get_connector


def _any_erp_settings() -> Any:
    """The pipeline-settings models of the installed ERP connectors, as one type.

    A request is read with it (and the API documents it) before its target connection is
    known; the pipelines service then holds the settings to the target ERP's own model. With
    one ERP installed this is that ERP's model itself."""
    models = tuple(
        spec.pipeline_settings
        for spec in all_connectors().values()
        if spec.kind == "erp" and spec.pipeline_settings is not None
    )
    if not models:
        return BaseModel
    return Union[models]  # noqa: UP007  (a union built at run time)


if TYPE_CHECKING:
    PipelineSettings = BaseModel
else:
    PipelineSettings = _any_erp_settings()


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
