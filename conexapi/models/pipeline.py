from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import Base, BigId, IdMixin, Json, TimestampMixin


class PipelineStatus(StrEnum):
    active = "active"
    paused = "paused"
    stopped = "stopped"


class MappingKind(StrEnum):
    #: marketplace SKU → ERP product code
    sku = "sku"
    #: buyer document type (CC, NIT, ...) → ERP identification type code
    id_type = "id_type"


class Pipeline(IdMixin, TimestampMixin, Base):
    """A marketplace connection feeding an ERP connection, with invoicing settings."""

    __tablename__ = "pipelines"

    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    source_connection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("connections.id"), nullable=False, index=True
    )
    target_connection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("connections.id"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=PipelineStatus.active)
    settings: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class Mapping(IdMixin, TimestampMixin, Base):
    __tablename__ = "mappings"
    __table_args__ = (UniqueConstraint("pipeline_id", "kind", "source_value"),)

    pipeline_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    source_value: Mapped[str] = mapped_column(String(120), nullable=False)
    target_value: Mapped[str] = mapped_column(String(120), nullable=False)
