from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import Base, BigId, IdMixin, TimestampMixin, UTCDateTime


class ConnectionStatus(StrEnum):
    active = "active"
    paused = "paused"
    needs_reauth = "needs_reauth"
    disconnected = "disconnected"


class Connection(IdMixin, TimestampMixin, Base):
    """One account on one external system (a Mercado Libre seller, a Siigo company)."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("connector", "external_account_id"),)

    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    connector: Mapped[str] = mapped_column(String(32), nullable=False)
    external_account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=ConnectionStatus.active)
    #: Encrypted JSON (tokens or API credentials); never logged, never returned.
    credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    last_refresh_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Optimistic lock: every credential write bumps it and checks the old value.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    #: The kind of account as the merchant declared it, one of the connector's modes (an
    #: ERP's test company may be allowed fewer requests); None: the connector's default.
    mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Requests per window upstream for this account, instead of its mode's budget.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
