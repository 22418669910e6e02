"""The one ``Retry-After`` parser every connector's client uses."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import TransientError
from connectors.http import MAX_RETRY_AFTER, parse_retry_after
from connectors.mercadolibre import client as mercadolibre_client
from connectors.siigo import errors as siigo_errors

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_both_clients_use_the_shared_parser() -> None:
    assert mercadolibre_client.parse_retry_after is parse_retry_after
    assert siigo_errors.parse_retry_after is parse_retry_after


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_delay_seconds_are_clamped_to_a_day(seconds: float) -> None:
    assert parse_retry_after(repr(seconds)) == min(max(seconds, 0.0), MAX_RETRY_AFTER)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_an_http_date_is_the_seconds_until_it(offset: int) -> None:
    value = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(value, now=NOW) == min(max(float(offset), 0.0), MAX_RETRY_AFTER)


@given(st.one_of(st.text(max_size=60), st.floats().map(repr), st.floats().map(str)))
def test_any_header_is_a_bounded_number_of_seconds_or_none(value: str) -> None:
    seconds = parse_retry_after(value)
    if seconds is not None:
        assert 0.0 <= seconds <= MAX_RETRY_AFTER
        assert not math.isnan(seconds)
        timedelta(seconds=seconds)  # what the runner makes of it


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", MAX_RETRY_AFTER),
        ("-inf", 0.0),
        ("1e999", MAX_RETRY_AFTER),
        (" 2.5 ", 2.5),
        ("Fri, 31 Dec 9999 23:59:59 -2359", MAX_RETRY_AFTER),
        ("Mon, 01 Jan 0001 00:00:00 +1400", 0.0),
    ],
)
def test_edge_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_a_siigo_retry_after_that_would_overflow_is_clamped() -> None:
    """Siigo's errors went through a parser of their own that let "1e999" through as inf."""
    response = httpx.Response(
        429,
        headers={"retry-after": "1e999"},
        json={"Status": 429, "Errors": [{"Code": "requests_limit", "Message": "slow down"}]},
        request=httpx.Request("POST", "https://siigo.test/v1/invoices"),
    )
    error = siigo_errors.error_from_response(response)
    assert isinstance(error, TransientError)
    assert error.retry_after == MAX_RETRY_AFTER
