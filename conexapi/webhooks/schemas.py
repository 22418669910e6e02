"""What the webhook route answers, and what the webhook-events endpoints show and take."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from conexapi.kit.api.pagination import UtcDatetime
from conexapi.kit.api.params import MAX_ID
from conexapi.models import EventStatus


class WebhookAck(BaseModel):
    status: str = "ok"
    event_id: int
    duplicate: bool
    event_status: str


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


class EventFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000
    )
    status: list[EventStatus] | None = Field(default=None, max_length=10)
    topic: str | None = Field(default=None, max_length=64)
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    received_from: UtcDatetime | None = None
    received_to: UtcDatetime | None = None


class BulkReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: EventFilter
    limit: int = Field(default=500, ge=1, le=1000)
