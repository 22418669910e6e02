"""Cursor pagination with a choice of sort, the same on every list.

A cursor is opaque to clients: the sort it was made for, the last row's sort value and
its id (the tie-breaker). Rows inserted while a client pages do not shift the pages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

from conexapi.kit.errors import BadRequest
from conexapi.kit.jsondepth import nested_deeper_than

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

    @property
    def value_type(self) -> type:
        """The Python type of the column's values: what a cursor's sort value must be."""
        column_type = self.column.type
        if isinstance(column_type, TypeDecorator):
            column_type = column_type.impl_instance
        python_type: type = column_type.python_type
        return python_type


def sort_key(value: str, columns: dict[str, InstrumentedAttribute[Any]]) -> SortKey:
    name = value.lstrip("-")
    return SortKey(value, columns[name], value.startswith("-"))


def encode_cursor(sort: SortKey, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.astimezone(UTC).isoformat()}
    raw = json.dumps([sort.name, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortKey) -> tuple[Any, int]:
    """The sort value and row id in a cursor made for ``sort``, typed as its column is.

    Anything else is a :class:`BadRequest`: the value goes into the query as a bound
    parameter of the sort column, so a value of another type (a string for a time) would
    otherwise fail in the database layer.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # A cursor nests two levels; deeper ones must not reach the recursive parser.
        decoded = None if nested_deeper_than(raw, 2) else json.loads(raw.decode("utf-8"))
    except ValueError:  # bad base64, bad UTF-8, bad JSON (binascii.Error is a ValueError)
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise _invalid_cursor()
    made_for, value, row_id = decoded
    if made_for != sort.name or not _is_int64(row_id) or row_id < 0:
        raise _invalid_cursor()
    try:
        return _sort_value(value, sort.value_type), row_id
    except (TypeError, ValueError, OverflowError):
        raise _invalid_cursor() from None


def _invalid_cursor() -> BadRequest:
    return BadRequest(
        "The cursor is not valid for this list and sort. Send the next_cursor of the "
        "previous page with the same sort, or no cursor to start from the first page.",
        code="invalid_cursor",
        details={"param": "cursor"},
    )


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _sort_value(value: Any, value_type: type) -> Any:
    """``value`` as the column holds it; ValueError (or TypeError) when it cannot be."""
    if value_type is datetime:
        if not isinstance(value, dict) or set(value) != {"t"} or not isinstance(value["t"], str):
            raise ValueError("not a time")
        instant = datetime.fromisoformat(value["t"])
        if instant.tzinfo is None:
            raise ValueError("a time without its zone")
        return instant.astimezone(UTC)  # OverflowError near the ends of the calendar
    if value_type is int:
        if not _is_int64(value):
            raise ValueError("not a 64-bit integer")
        return value
    if value_type is str:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    raise TypeError(f"no cursor encoding for {value_type.__name__} columns")


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
        value, last_id = decode_cursor(cursor, sort)
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
    return rows, encode_cursor(sort, getattr(last, key), getattr(last, id_column.key))
