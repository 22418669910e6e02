"""``conexapi_orders_first_seen_today``: how today's sales reached the product, per pipeline.

The sync runner counts ``conexapi_orders_first_seen_total`` where a run first claims an
order, but that happens in worker processes, which serve no ``/metrics``: nothing scrapes
it. This gauge is served by the API from the daily reports (rebuilt by beat every
``report_interval_seconds``): for each pipeline, today's orders (in the pipeline's time
zone) to invoice by how the product first saw them, ``webhook``, ``reconcile`` or
``unseen``. A pipeline whose sales all arrive by ``reconcile`` has lost its marketplace
notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from conexapi.kit.resources import Resources
from conexapi.models import ReconciliationReport, utcnow
from conexapi.sync.days import local_date, pipeline_zones

log = structlog.get_logger(__name__)

NAME = "conexapi_orders_first_seen_today"
REFRESH_SECONDS = 60.0


class FirstSeenCollector(Collector):
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], int] = {}

    def describe(self) -> list[Any]:
        return []  # the values come from the database; nothing to collect at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            NAME,
            "Today's orders to invoice by how they were first seen (webhook, reconcile, "
            "unseen), per pipeline; from the daily reconciliation reports",
            labels=["pipeline_id", "via"],
        )
        for (pipeline_id, via), count in sorted(self.values.items()):
            family.add_metric([pipeline_id, via], count)
        yield family

    async def refresh(self, res: Resources) -> None:
        now = utcnow()
        # Each pipeline's today is within a day of UTC's; each keeps its own.
        near = [now.date() + timedelta(days=d) for d in (-1, 0, 1)]
        async with res.sessionmaker() as session:
            zones = await pipeline_zones(session)
            rows = await session.execute(
                select(
                    ReconciliationReport.pipeline_id,
                    ReconciliationReport.day,
                    ReconciliationReport.first_seen,
                ).where(ReconciliationReport.day.in_(near))
            )
            values = {
                (str(pipeline_id), str(via)): int(count)
                for pipeline_id, day, seen in rows.all()
                if pipeline_id in zones and day == local_date(now, zones[pipeline_id])
                for via, count in (seen or {}).items()
            }
        self.values = values


_collector: FirstSeenCollector | None = None


def collector() -> FirstSeenCollector:
    """The process's collector, registered on first use (several apps may share one)."""
    global _collector
    if _collector is None:
        _collector = FirstSeenCollector()
        REGISTRY.register(_collector)
    return _collector


async def _keep_fresh(res: Resources, target: FirstSeenCollector, every: float) -> None:
    while True:
        try:
            await target.refresh(res)
        except Exception as exc:  # a metric must never take the API down
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancel that reached the database call can come back as its error
                # (aiomysql on uvloop does): the shutdown waits for this loop to end.
                raise asyncio.CancelledError from exc
            log.warning("first_seen_metric_refresh_failed", error=str(exc)[:200])
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def first_seen_metrics(app: Any) -> AsyncIterator[None]:
    """Router lifespan: keeps the gauge fresh while the API runs."""
    task = asyncio.create_task(_keep_fresh(app.state.resources, collector(), REFRESH_SECONDS))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
