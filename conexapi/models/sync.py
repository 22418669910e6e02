"""The inbox, the per-order state machine and every run against it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Computed,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import (
    Base,
    BigId,
    IdMixin,
    Json,
    Money,
    TimestampMixin,
    UTCDateTime,
    utcnow,
)


class EventStatus(StrEnum):
    received = "received"
    queued = "queued"
    processed = "processed"
    ignored = "ignored"
    failed = "failed"


class WebhookEvent(IdMixin, Base):
    """A notification exactly as received, committed before the sender gets its 200."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("connector", "dedupe_key"),
        Index("ix_webhook_events_status_received_at", "status", "received_at"),
    )

    connector: Mapped[str] = mapped_column(String(32), nullable=False)
    #: ``_id`` when the marketplace sends one, else topic + resource + received.
    dedupe_key: Mapped[str] = mapped_column(String(190), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    resource: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    #: The marketplace order the notification is about, when it is about one.
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_account_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=EventStatus.received)
    ignore_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    duplicate_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class OrderState(StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    waiting_payment = "waiting_payment"
    retry_scheduled = "retry_scheduled"
    invoiced = "invoiced"
    closed = "closed"
    needs_mapping = "needs_mapping"
    needs_attention = "needs_attention"
    needs_reauth = "needs_reauth"
    cancelled_after_invoice = "cancelled_after_invoice"
    failed = "failed"


class OrderSync(IdMixin, TimestampMixin, Base):
    """One marketplace order within one pipeline, and where it stands."""

    __tablename__ = "order_syncs"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "external_order_id"),
        Index("ix_order_syncs_state_next_attempt_at", "state", "next_attempt_at"),
    )

    pipeline_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    external_order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False, default=OrderState.pending)
    #: Deterministic key sent to the ERP; reserved before the first POST.
    idempotency_key: Mapped[str | None] = mapped_column(String(40), nullable=True)
    erp_document_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    erp_document_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    erp_total: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    erp_stamp_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    order_total: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    order_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    order_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    first_seen_via: Mapped[str] = mapped_column(String(20), nullable=False, default="webhook")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: A notification arrived while a run was active: run once more when it ends.
    rerun_requested: Mapped[bool] = mapped_column(default=False, nullable=False)
    last_error_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error_message: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    waiting = "waiting"
    retry_scheduled = "retry_scheduled"
    failed = "failed"


ACTIVE_RUN_STATUSES = (RunStatus.queued, RunStatus.running)


class SyncRun(IdMixin, Base):
    """One attempt at an order. At most one is active (queued or running) per order."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_status_heartbeat_at", "status", "heartbeat_at"),)

    order_sync_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("order_syncs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # MariaDB has no partial indexes: this column is the order id while the run is active
    # and NULL once it ends, and its UNIQUE index admits any number of NULLs.
    active_order_sync_id: Mapped[int | None] = mapped_column(
        BigId,
        Computed(
            "CASE WHEN status IN ('queued', 'running') THEN order_sync_id ELSE NULL END",
            persisted=True,
        ),
        unique=True,
    )
    webhook_event_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("webhook_events.id", ondelete="SET NULL"), nullable=True
    )
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=RunStatus.queued)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    upstream_request_ids: Mapped[list[str]] = mapped_column(Json, nullable=False, default=list)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
