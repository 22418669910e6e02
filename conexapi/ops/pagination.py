"""Cursor pagination with a choice of sort, the same on every list.

A cursor is opaque to clients: the sort it was made for, the last row's sort value and
its id (the tie-breaker). Rows inserted while a client pages do not shift the pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.kit.errors import ValidationFailed

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Send as ``cursor`` to get the next page; null on the last page."
    )


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("date out of range") from None


#: A timezone-aware instant (naive ones are refused: which zone would they be in?).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


@dataclass(frozen=True)
class SortKey:
    name: str
    column: InstrumentedAttribute[Any]
    descending: bool


def sort_key(value: str, columns: dict[str, InstrumentedAttribute[Any]]) -> SortKey:
    name = value.lstrip("-")
    return SortKey(value, columns[name], value.startswith("-"))


def _encode(sort: str, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.astimezone(UTC).isoformat()}
    raw = json.dumps([sort, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple[Any, int]:
    invalid = ValidationFailed(
        "The cursor is not valid for this list and sort.",
        code="invalid_cursor",
        details={"param": "cursor"},
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise invalid from None
    if made_for != sort or not isinstance(row_id, int) or not 0 <= row_id < 2**63:
        raise invalid
    if isinstance(value, dict):
        try:
            value = datetime.fromisoformat(value["t"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise invalid from None
    elif not _plain(value):
        raise invalid
    return value, row_id


def _plain(value: Any) -> bool:
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or isinstance(value, str)


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[int],
    sort: SortKey,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``stmt`` (a select of ORM rows) and the cursor of the next one."""
    column = sort.column
    if cursor:
        value, last_id = _decode(cursor, sort.name)
        if column is id_column:
            stmt = stmt.where(id_column < last_id if sort.descending else id_column > last_id)
        else:
            after = column < value if sort.descending else column > value
            tie = id_column < last_id if sort.descending else id_column > last_id
            stmt = stmt.where(or_(after, and_(column == value, tie)))
    order = [column.desc(), id_column.desc()] if sort.descending else [column, id_column]
    if column is id_column:
        order = order[:1]
    rows = list((await session.scalars(stmt.order_by(*order).limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    key = column.key
    return rows, _encode(sort.name, getattr(last, key), getattr(last, id_column.key))
