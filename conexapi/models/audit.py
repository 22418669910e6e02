"""What changed, who did it, when and from where; and the answers to bulk requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import Base, BigId, IdMixin, Json, UTCDateTime, utcnow


class AuditEntry(IdMixin, Base):
    """One action that changed something.

    No foreign keys on purpose: the trail outlives the users, keys and merchants it names.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_merchant_id_occurred_at", "merchant_id", "occurred_at"),
        Index("ix_audit_log_occurred_at", "occurred_at"),
    )

    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    #: user, api_key or system
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: email or key prefix at the time, so the entry reads without joins
    actor_label: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    merchant_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class IdempotentRequest(IdMixin, Base):
    """The stored answer to a request sent with an ``Idempotency-Key``.

    The row is inserted before the work and completed in the same transaction, so a
    concurrent duplicate waits on the unique key and then reads the finished answer.
    """

    __tablename__ = "idempotent_requests"
    __table_args__ = (
        UniqueConstraint("owner", "key"),
        Index("ix_idempotent_requests_expires_at", "expires_at"),
    )

    #: the principal that sent it ("user:12", "api_key:3"): keys are per client
    owner: Mapped[str] = mapped_column(String(40), nullable=False)
    key: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    #: SHA-256 hex of the body: the same key with another body is refused
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
