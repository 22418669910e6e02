"""Mercado Libre ids: positive 64-bit integers, each with exactly one spelling.

Mercado Libre answers ``/orders/0123`` with order 123, so to it "0123" and "123" are one
order; to the product, two strings are two orders, two idempotency keys and two invoices.
Every id that comes in (a notification, an order document, an operator's request) is
therefore taken as an integer, and as text only in its canonical decimal spelling.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import DataError

#: Mercado Libre ids are Java longs: at most 2^63 - 1 (19 digits).
MAX_ID = 2**63 - 1
#: The one spelling: ASCII digits, no sign, no leading zero, no whitespace.
_CANONICAL = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)


def canonical_id(value: Any) -> str | None:
    """``value`` as the canonical text of a positive 64-bit id, or None if it is not one.

    A JSON integer is exact in Python, so it is taken at its value; text is taken only in
    the canonical spelling. A bool or a float (an id that passed through a double, and may
    have been rounded) is never an id.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _CANONICAL.fullmatch(value):
        number = int(value)
    else:
        return None
    return str(number) if 0 < number <= MAX_ID else None


def order_id(value: Any, *, field: str = "order_id") -> str:
    """The canonical text of an order id; :class:`DataError` for anything else."""
    found = canonical_id(value)
    if found is None:
        shown = value if isinstance(value, str | int) else type(value).__name__
        raise DataError(
            f"Mercado Libre order id {str(shown)[:40]!r} is not an order id: give it as "
            "digits with no sign, leading zero or spaces",
            code="invalid_order_id",
            field=field,
        )
    return found
