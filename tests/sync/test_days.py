"""A pipeline's days are its connectors' days: the zone comes from the connector specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conexapi.sync.days import local_date, pipeline_zone
from connectors.registry import get_connector


def test_the_first_pair_declares_utc_minus_five() -> None:
    for name in ("siigo", "mercadolibre"):
        zone = get_connector(name).time_zone
        assert zone is not None and zone.utcoffset(None) == timedelta(hours=-5)
    zone = pipeline_zone("siigo", "mercadolibre")
    # 03:00 UTC is still the evening before in Bogotá.
    assert local_date(datetime(2026, 3, 11, 3, 0, tzinfo=UTC), zone).isoformat() == "2026-03-10"


def test_a_pipeline_without_a_declared_zone_counts_utc_days() -> None:
    assert pipeline_zone("no-such-erp", "no-such-marketplace") is UTC
