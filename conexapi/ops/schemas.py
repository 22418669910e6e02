"""What the ops API shows. Never a credential, token or key (except a new key, once)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from conexapi.connections.schemas import ConnectionOut
from conexapi.models import (
    Connection,
    EventStatus,
    OrderState,
    RunStatus,
)

MAX_ID = 2**63 - 1

#: An id in a path: bounded so no value can overflow a database integer.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


class MerchantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Tienda Demo SAS"])
    slug: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$", examples=["tienda-demo"]
    )


class MerchantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class MerchantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    slug: str
    created_at: datetime
    updated_at: datetime


class ConnectionView(ConnectionOut):
    merchant_id: int

    @classmethod
    def of(cls, conn: Connection) -> ConnectionView:
        return cls(**ConnectionOut.of(conn).model_dump(), merchant_id=conn.merchant_id)


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


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    connector: str
    topic: str
    resource: str
    order_id: str | None
    external_account_id: str
    status: EventStatus
    ignore_reason: str | None
    duplicate_count: int
    correlation_id: str | None
    received_at: datetime
    enqueued_at: datetime | None
    processed_at: datetime | None
    last_error: str | None


class EventDetail(EventOut):
    payload: dict[str, Any] | None
    merchant_ids: list[int]


class BulkReplayResult(BaseModel):
    replayed: list[int]
    truncated: bool


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    actor_label: str
    action: str
    merchant_id: int | None
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None
    request_id: str | None
