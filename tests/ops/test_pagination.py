"""The cursor decoder, fuzzed: whatever a client sends as ``cursor``, it either yields a
value of the sort column's type and a row id, or a 400 ``invalid_cursor`` — never another
exception (which would be a 500)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from conexapi.kit.api.pagination import (
    SortKey,
    UtcDatetime,
    decode_cursor,
    encode_cursor,
    sort_key,
)
from conexapi.kit.errors import AppError
from conexapi.models import OrderSync

SORTS = [
    sort_key(name, {"id": OrderSync.id, "created_at": OrderSync.created_at})
    for name in ("id", "-id", "created_at", "-created_at")
]
SORT = st.sampled_from(SORTS)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def check(cursor: str, sort: SortKey) -> None:
    """The property: a typed result or a clean 400, nothing else."""
    try:
        value, row_id = decode_cursor(cursor, sort)
    except AppError as exc:
        assert exc.status_code == 400 and exc.code == "invalid_cursor"
        return
    assert type(row_id) is int and 0 <= row_id < 2**63
    if sort.value_type is datetime:
        assert isinstance(value, datetime) and value.utcoffset() == timedelta(0)
    else:
        assert type(value) is int and -(2**63) <= value < 2**63


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: {"t": d.isoformat()}),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
SORT_NAMES = st.sampled_from([s.name for s in SORTS]) | st.text(max_size=12) | JSON
ROW_IDS = st.integers() | JSON


@settings(max_examples=500, deadline=None)
@given(st.text(), SORT)
@example("WyItY3JlYXRlZF9hdCIsImFiYyIsNV0", SORTS[3])  # the audit's: ["-created_at","abc",5]
@example("%%%not-base64", SORTS[0])
def test_any_text(cursor: str, sort: SortKey) -> None:
    check(cursor, sort)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), SORT)
@example(b"[" * 100_000, SORTS[0])
@example(b'["-created_at",' * 3000 + b"1", SORTS[3])
@example(b"\xff\xfe[\x00]\x00", SORTS[0])  # UTF-16 with a byte order mark
def test_any_bytes(raw: bytes, sort: SortKey) -> None:
    check(b64(raw), sort)


@pytest.mark.slow  # 1,500 examples: seconds of CPU, out of make test-fast's inner loop
@settings(max_examples=1500, deadline=None)
@given(SORT_NAMES, JSON, ROW_IDS, SORT)
@example("-created_at", "abc", 5, SORTS[3])
@example("-created_at", 5, 5, SORTS[3])
@example("created_at", {"t": "2026-11-01T12:00:00"}, 5, SORTS[2])  # no zone
@example("created_at", {"t": "0001-01-01T00:00:00.000+14:00"}, 5, SORTS[2])  # before year 1
@example("created_at", {"t": "9999-12-31T23:59:59-14:00"}, 5, SORTS[2])  # after 9999
@example("created_at", {"t": "2026-11-01T12:00:00+00:00", "x": 1}, 5, SORTS[2])
@example("id", "abc", 5, SORTS[0])
@example("id", True, 5, SORTS[0])
@example("id", 2**63, 5, SORTS[0])
@example("id", 7, 2**63, SORTS[0])
@example("id", 7, -1, SORTS[0])
@example("id", 7, 5.0, SORTS[0])
def test_any_json_of_the_right_shape(made_for: Any, value: Any, row_id: Any, sort: SortKey) -> None:
    check(b64(json.dumps([made_for, value, row_id]).encode()), sort)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.timezones()
    ),
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_a_cursor_it_made_comes_back_as_it_went(when: datetime, row_id: int) -> None:
    by_time = SORTS[3]
    assert decode_cursor(encode_cursor(by_time, when, row_id), by_time) == (
        when.astimezone(UTC),
        row_id,
    )
    by_id = SORTS[1]
    assert decode_cursor(encode_cursor(by_id, row_id, row_id), by_id) == (row_id, row_id)


@pytest.mark.parametrize(
    ("value", "sort"),
    [
        ({"t": "2026-11-01T12:00:00+00:00"}, SORTS[0]),  # a time for an id sort
        (5, SORTS[2]),  # a number for a time sort
        ({"t": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))).isoformat()}, SORTS[0]),
    ],
)
def test_a_value_of_another_type_than_the_column_is_refused(value: Any, sort: SortKey) -> None:
    with pytest.raises(AppError) as refused:
        decode_cursor(b64(json.dumps([sort.name, value, 5]).encode()), sort)
    assert refused.value.status_code == 400


UTC_DATETIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


@settings(max_examples=500, deadline=None)
@given(
    st.text()
    | st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat)
    | st.sampled_from(["0001-01-01T00:00:00.000+14:00", "9999-12-31T23:59:59.999-14:00"])
)
def test_time_filters_are_aware_utc_or_a_validation_error(text: str) -> None:
    """The lists' time filters (``created_from``...): an aware UTC instant, or a 422."""
    try:
        value = UTC_DATETIME.validate_python(text)
    except ValidationError:
        return
    assert value.utcoffset() == timedelta(0)
