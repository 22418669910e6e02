"""Colombia's time: UTC-5 all year round (no daylight saving time since 1993)."""

from __future__ import annotations

from datetime import timedelta, timezone

#: A fixed offset rather than the tz database's zone: it never changes, and it needs no
#: tz data on the host.
TIME_ZONE = timezone(timedelta(hours=-5), "America/Bogota")
