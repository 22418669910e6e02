"""Declarative base and column types shared by every table.

Types are chosen so one set of migrations runs on MariaDB and SQLite: ids are BIGINT on
MariaDB and INTEGER (rowid) on SQLite, times are stored as naive UTC with microseconds and
read back timezone-aware, money is a fixed-point DECIMAL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Numeric,
    func,
    literal,
    literal_column,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(mysql.JSON(), "mysql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC with microseconds in the database."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def database_utcnow(dialect: str, minus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """Now, less ``minus_seconds``, on the database server's clock: a SQL expression.

    For times that several hosts write and compare, such as a run's heartbeat: judged on
    one clock, a host whose own clock is off can neither make a live run look dead nor a
    dead one look alive. SQLite is embedded (one host, one clock): this process's clock.
    """
    if dialect in ("mysql", "mariadb"):
        now = func.utc_timestamp(literal_column("6"), type_=UTCDateTime())
        if not minus_seconds:
            return now
        micros = -round(minus_seconds * 1_000_000)
        return func.timestampadd(literal_column("MICROSECOND"), micros, now, type_=UTCDateTime())
    return literal(utcnow() - timedelta(seconds=minus_seconds), UTCDateTime())


def Money() -> Numeric[Decimal]:
    return Numeric(18, 2, asdecimal=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
