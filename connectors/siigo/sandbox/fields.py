"""Siigo's typed readers for a request body: each answers the error code and message the
blueprint gives for a missing or mistyped field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from connectors.siigo.sandbox.state import Json, SiigoApiError


def fail(code: str, message: str, *params: str, status: int = 400) -> SiigoApiError:
    return SiigoApiError(status, code, message, params)


# --- typed readers ----------------------------------------------------------------------


def number(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise fail("invalid_type", f"The field {field} must be a number", field)
    return Decimal(value)


def integer(value: Any, field: str) -> int:
    # Siigo's own examples send branch_office as "0": numeric strings are read as numbers.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail("invalid_type", f"The field {field} must be an integer", field)
    return value


def decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def text(value: Any, field: str, *, required: bool = True, max_len: int | None = None) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise fail("parameter_required", f"The field {field} is required", field)
        return ""
    if not isinstance(value, str):
        raise fail("invalid_type", f"The field {field} must be a string", field)
    if max_len is not None and len(value) > max_len:
        raise fail("length_max", f"The field {field} allows {max_len} characters", field)
    return value


def obj(value: Any, field: str, *, required: bool = True) -> Json:
    if value is None:
        if required:
            raise fail("parameter_required", f"The field {field} is required", field)
        return {}
    if not isinstance(value, dict):
        raise fail("invalid_type", f"The field {field} must be an object", field)
    return value


def array(value: Any, field: str, *, required: bool = True) -> list[Any]:
    if value is None or value == []:
        if required:
            raise fail("parameter_required", f"The field {field} is required", field)
        return []
    if not isinstance(value, list):
        raise fail("invalid_type", f"The field {field} must be an array", field)
    return value


def iso_date(value: Any, field: str) -> date:
    raw = text(value, field)
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise fail("invalid_date", f"The field {field} must be a date yyyy-MM-dd", field) from None
