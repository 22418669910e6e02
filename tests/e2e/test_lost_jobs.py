"""Jobs Redis loses are sent again by the sweeper within minutes, and a job sent again while
its first copy is only slow does nothing twice. MariaDB, Redis, real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from conexapi.kit import jobs
from conexapi.models import WebhookEvent
from conexapi.sync.sweeper import SweepReport, sweep
from tests.support.stack import Stack, running_stack
from workers.celery_app import QUEUE, create_celery
from workers.sender import CelerySender

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}


async def _until(what: str, check: Callable[[], Awaitable[Any]], st: Stack, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        logs = st.workers.logs() if st.workers else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs}"
        await asyncio.sleep(0.3)


async def _event_statuses(st: Stack) -> list[str]:
    async with st.res.sessionmaker() as s:
        return list(await s.scalars(select(WebhookEvent.status).order_by(WebhookEvent.id)))


async def _order(st: Stack, order_id: str) -> dict[str, Any] | None:
    return next((r for r in await st.orders() if r["external_order_id"] == order_id), None)


async def _invoice_posts(st: Stack) -> list[str]:
    resp = await st.siigo.get(
        "/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"}
    )
    resp.raise_for_status()
    return [p["headers"]["idempotency-key"] for p in resp.json()]


@contextlib.asynccontextmanager
async def _sweeper_sends_from_this_loop(st: Stack) -> AsyncIterator[None]:
    """The sweeper runs here, on the test's loop, and sends through the process's sender:
    the API's sends with a Redis client of the API's own loop (another thread). Celery's
    own publishing works from any thread, and stands in for both meanwhile."""
    previous = jobs.get_sender()
    jobs.set_sender(CelerySender(create_celery(st.settings)))
    try:
        yield
    finally:
        jobs.set_sender(previous)


async def _job_waiting_in_redis(st: Stack, broker: Redis, order_id: str) -> None:
    """The notification is in the inbox, marked queued, and its job waits in Redis."""
    await st.notify(order_id)

    async def queued() -> bool:
        return await _event_statuses(st) == ["queued"] and await broker.llen(QUEUE) == 1

    await _until("the event's job in Redis", queued, st, 30)


async def test_a_job_redis_lost_while_nothing_else_arrives_is_sent_again_by_the_sweeper(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with (
        running_stack(
            tmp_path,
            mariadb_url,
            redis_url,
            orders=1,
            mix=PAID_ONLY,
            worker_count=0,
            queued_event_requeue_seconds=3.0,
        ) as st,
        _sweeper_sends_from_this_loop(st),
    ):
        assert st.setup is not None and st.workers is not None
        order_id = st.setup.order_ids[0]
        broker = Redis.from_url(redis_url)
        try:
            await _job_waiting_in_redis(st, broker, order_id)
            # Redis loses it (a restart without persistence, a failover, a flush).
            assert await broker.delete(QUEUE) == 1
        finally:
            await broker.aclose()
        st.workers.start(1)

        # Nothing else arrives: only the sweeper (beat's job, run here every second) can
        # find the event again.
        sent_again = 0

        async def invoiced() -> bool:
            nonlocal sent_again
            row = await _order(st, order_id)
            if row is not None and row["state"] == "invoiced":
                return True
            report: SweepReport = await sweep(st.res)
            sent_again += report.events_enqueued
            await asyncio.sleep(0.7)
            return False

        await _until("the lost job's order to be invoiced", invoiced, st, 120)
        assert sent_again >= 1
        assert await _event_statuses(st) == ["processed"]
        assert await _invoice_posts(st) == [f"ML{order_id}"]


async def test_a_slow_job_sent_again_makes_one_run_and_one_invoice(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with (
        running_stack(
            tmp_path,
            mariadb_url,
            redis_url,
            orders=1,
            mix=PAID_ONLY,
            worker_count=0,
            queued_event_requeue_seconds=1.0,
            queued_run_requeue_seconds=1.0,
            # Generous: the live run is slow, not dead (takeover is tested in tests/sync).
            run_heartbeat_timeout_seconds=60.0,
        ) as st,
        _sweeper_sends_from_this_loop(st),
    ):
        assert st.setup is not None and st.workers is not None
        order_id = st.setup.order_ids[0]
        broker = Redis.from_url(redis_url)
        try:
            await _job_waiting_in_redis(st, broker, order_id)

            # No worker is free yet: the job is only slow. Past the threshold the sweeper
            # sends it again, and both copies are in Redis.
            async def sent_again() -> bool:
                report: SweepReport = await sweep(st.res)
                return report.events_enqueued == 1

            await _until("the sweeper to send the job again", sent_again, st, 60)
            assert await broker.llen(QUEUE) == 2
        finally:
            await broker.aclose()

        # Siigo is slow, and two worker processes take the two copies at once.
        await st.siigo.patch("/_sandbox/config", json={"latency_ms": 1500})
        st.workers.start(2)

        async def in_progress() -> dict[str, Any] | None:
            row = await _order(st, order_id)
            return row if row is not None and row["state"] == "in_progress" else None

        row = await _until("the order's run to start", in_progress, st, 90)
        # While the run works, its job is delivered twice more and the sweeper passes.
        detail = (await st.api.get(f"/api/v1/orders/{row['id']}")).json()
        (run,) = detail["runs"]
        celery = create_celery(st.settings)
        for _ in range(2):
            celery.send_task("conexapi.execute_run", args=[run["id"]])
        requeued = 0

        async def invoiced() -> bool:
            nonlocal requeued
            current = await _order(st, order_id)
            if current is not None and current["state"] == "invoiced":
                return True
            requeued += (await sweep(st.res)).runs_requeued
            return False

        await _until("the order to be invoiced", invoiced, st, 120)
        assert requeued == 0  # a live run is not handed on
        detail = (await st.api.get(f"/api/v1/orders/{row['id']}")).json()
        assert [r["status"] for r in detail["runs"]] == ["succeeded"]
        # What Siigo received: one invoice request, for this order's key.
        assert await _invoice_posts(st) == [f"ML{order_id}"]
        assert await _event_statuses(st) == ["processed"]
