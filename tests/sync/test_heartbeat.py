"""Heartbeat takeover: a dead worker's run is taken over within about a minute by default,
and a live run never is, whatever its worker's clock says or how slow its machine is."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.tasks import EXECUTE_RUN
from conexapi.models import EventStatus, RunStatus, SyncRun, WebhookEvent
from conexapi.models.base import database_utcnow
from conexapi.sync import claim, runner
from conexapi.sync.runner import execute_run
from conexapi.sync.service import ingest_events
from conexapi.sync.sweeper import sweep
from tests.support.ids import SELLER_ID
from tests.support.world import World, world

DATABASES = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: the world's SQLite file; else an empty MariaDB database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("mariadb_url")
    return url


async def _queued_run(w: World) -> int:
    (order_id,) = await w.generate(1, seed=31)
    async with unit_of_work(w.res.sessionmaker) as s:
        event = WebhookEvent(
            connector="mercadolibre",
            dedupe_key=f"id:{order_id}",
            topic="orders_v2",
            resource=f"/orders/{order_id}",
            order_id=order_id,
            external_account_id=str(SELLER_ID),
            status=EventStatus.queued,
            payload={"resource": f"/orders/{order_id}"},
        )
        s.add(event)
        await s.flush()
        (run_id,) = await ingest_events(s, [event], send_jobs=False)
    return run_id


async def _run(w: World, run_id: int) -> SyncRun:
    async with w.res.sessionmaker() as s:
        run = await s.get(SyncRun, run_id)
        assert run is not None
        return run


async def _wait_running(w: World, run_id: int, holder: asyncio.Task[str]) -> None:
    """Until ``holder`` has claimed the run."""
    deadline = time.monotonic() + 60
    while (await _run(w, run_id)).status != RunStatus.running:
        assert time.monotonic() < deadline and not holder.done(), "the run was not claimed"
        await asyncio.sleep(0.1)


async def _silent_for(w: World, run_id: int, seconds: float) -> None:
    """The run's last heartbeat was ``seconds`` ago, on the database's clock."""
    async with unit_of_work(w.res.sessionmaker) as s:
        await s.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(heartbeat_at=database_utcnow(w.res.engine.dialect.name, seconds))
        )


async def _invoice_posts(w: World) -> list[dict[str, Any]]:
    resp = await w.siigo.get(
        "/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"}
    )
    resp.raise_for_status()
    posts: list[dict[str, Any]] = resp.json()
    return posts


async def test_a_run_whose_worker_died_is_taken_over_within_about_a_minute_by_default(
    tmp_path: Path, database_url: str | None, sent_jobs: list[jobs.Job]
) -> None:
    async with world(tmp_path, database_url) as w:  # the default heartbeat timeout
        run_id = await _queued_run(w)
        # A worker claims the run and dies in the middle of it: no heartbeat after that.
        await w.siigo.patch("/_sandbox/config", json={"latency_ms": 60_000})
        doomed = asyncio.create_task(execute_run(w.ctx, run_id))
        await _wait_running(w, run_id, doomed)
        doomed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doomed
        await w.siigo.patch("/_sandbox/config", json={"latency_ms": 0})

        # Silent for half a minute: it may only be slow, nobody takes it.
        await _silent_for(w, run_id, 30)
        assert (await sweep(w.res)).runs_requeued == 0
        assert await execute_run(w.ctx, run_id) == "busy"

        # Silent for 70 s: its worker is gone; the sweeper hands it on and it is taken over.
        await _silent_for(w, run_id, 70)
        assert (await sweep(w.res)).runs_requeued == 1
        assert jobs.Job(EXECUTE_RUN, (run_id,)) in [jobs.Job(j.name, j.args) for j in sent_jobs]
        assert await execute_run(w.ctx, run_id) == RunStatus.succeeded
        invoices = await w.invoices()
        assert len(invoices) == 1
        assert (await _run(w, run_id)).status == RunStatus.succeeded


#: The clock of the worker holding the run, off by what this holds (nothing by default).
_SKEW: contextvars.ContextVar[timedelta] = contextvars.ContextVar("skew", default=timedelta(0))


@contextlib.asynccontextmanager
async def _stalling_loop(stall: float, every: float) -> AsyncIterator[None]:
    """The event loop stops for ``stall`` seconds every ``every``: a slow machine, GC."""

    async def stalls() -> None:
        while True:
            time.sleep(stall)  # noqa: ASYNC251  (the point: nothing else runs meanwhile)
            await asyncio.sleep(every - stall)

    task = asyncio.create_task(stalls())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.mariadb
async def test_a_live_run_is_never_taken_over_even_with_its_worker_clock_behind_on_a_slow_machine(
    tmp_path: Path, mariadb_url: str, monkeypatch: pytest.MonkeyPatch, sent_jobs: list[jobs.Job]
) -> None:
    real_utcnow = runner.utcnow

    def worker_clock() -> datetime:
        return real_utcnow() + _SKEW.get()

    # The claim and the record of the run's end are where a worker reads its own clock.
    monkeypatch.setattr(claim, "utcnow", worker_clock)
    monkeypatch.setattr(runner, "utcnow", worker_clock)
    # A short timeout, so the run lasts several times longer than it.
    async with world(tmp_path, mariadb_url, run_heartbeat_timeout_seconds=6.0) as w:
        run_id = await _queued_run(w)
        # Every Siigo call takes 2.5 s: the run lasts well beyond the heartbeat timeout.
        await w.siigo.patch("/_sandbox/config", json={"latency_ms": 2500})
        # The worker holding the run has its clock ten minutes behind the others'.
        token = _SKEW.set(timedelta(minutes=-10))
        first = asyncio.create_task(execute_run(w.ctx, run_id))
        _SKEW.reset(token)
        await _wait_running(w, run_id, first)

        others: list[str] = []
        after_it_ended: list[str] = []
        requeued = 0
        async with _stalling_loop(stall=0.3, every=0.5):
            while not first.done():
                # Another worker gets the run's job (a redelivery, the sweeper's re-send)...
                outcome = await execute_run(w.ctx, run_id)
                # The live run may end during that attempt: then "finished" is the truth.
                (after_it_ended if first.done() else others).append(outcome)
                # ...and the sweeper looks for runs whose heartbeat stopped.
                requeued += (await sweep(w.res)).runs_requeued
                await asyncio.sleep(0.5)
        assert await first == RunStatus.succeeded
        assert others and set(others) == {"busy"}, others
        assert set(after_it_ended) <= {"busy", "finished"}, after_it_ended
        assert requeued == 0
        assert [j for j in sent_jobs if j.name == EXECUTE_RUN] == []
        # The ERP was asked once: no second attempt ran beside the live one.
        assert len(await _invoice_posts(w)) == 1
        assert len(await w.invoices()) == 1
        async with w.res.sessionmaker() as s:
            assert list(await s.scalars(select(SyncRun.status))) == [RunStatus.succeeded]
