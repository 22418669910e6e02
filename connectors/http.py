"""HTTP details every connector's client shares."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: A longer Retry-After is no pace to keep but a broken header: wait a day at most.
MAX_RETRY_AFTER = 86400.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait, from delay-seconds or an HTTP date; None when it says nothing.

    Clamped to ``[0, MAX_RETRY_AFTER]``: the value becomes a ``timedelta`` downstream, and
    "1e999", "nan" or a date in year 9999 must not overflow it. ``now``: for tests.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


__all__ = ["MAX_RETRY_AFTER", "parse_retry_after"]
