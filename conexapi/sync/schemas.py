"""What the orders and runs endpoints show and take."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from conexapi.kit.api.pagination import UtcDatetime
from conexapi.kit.api.params import MAX_ID
from conexapi.models import OrderState, RunStatus


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    order_sync_id: int
    trigger: str
    status: RunStatus
    attempt: int
    correlation_id: str | None
    webhook_event_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error_class: str | None
    error_code: str | None
    error_message: str | None
    upstream_request_ids: list[str]


class RunDetail(RunOut):
    heartbeat_at: datetime | None
    worker: str | None
    pipeline_id: int
    merchant_id: int
    external_order_id: str
    order_state: OrderState


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    pipeline_id: int
    external_order_id: str
    state: OrderState
    order_status: str | None
    order_total: Decimal | None
    erp_document_id: str | None
    erp_document_name: str | None
    erp_total: Decimal | None
    erp_stamp_status: str | None
    idempotency_key: str | None
    first_seen_via: str
    attempts: int
    next_attempt_at: datetime | None
    last_error_class: str | None
    last_error_code: str | None
    last_error_message: str | None
    created_at: datetime
    updated_at: datetime


class ErpDocument(BaseModel):
    id: str
    name: str | None
    total: Decimal | None
    stamp_status: str | None


class OrderDetail(OrderOut):
    merchant_id: int
    erp_document: ErpDocument | None = Field(description="The invoice, once it exists.")
    runs: list[RunOut] = Field(description="Every run of the order, oldest first.")


class RetryResult(BaseModel):
    order: OrderOut
    run: RunOut


class Skipped(BaseModel):
    order_id: int
    reason: str = Field(examples=["already_invoiced", "run_active"])


class BulkRetryResult(BaseModel):
    retried: list[RetryResult]
    skipped: list[Skipped]
    truncated: bool = Field(description="More orders matched than one request handles.")


class OrderFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    pipeline_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    state: list[OrderState] | None = Field(
        default=None,
        max_length=20,
        description="Default: failed, needs_attention, needs_reauth, needs_mapping, "
        "retry_scheduled. Invoiced orders are always skipped.",
    )
    order_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000
    )
    external_order_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=1000
    )
    error_class: str | None = Field(default=None, max_length=32)
    created_from: UtcDatetime | None = None
    created_to: UtcDatetime | None = None


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: OrderFilter = Field(default_factory=OrderFilter)
    limit: int = Field(default=500, ge=1, le=1000)
