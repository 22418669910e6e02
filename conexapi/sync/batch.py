"""Taking a batch: inbox events become runs, executed many at once on this process's loop.

What a ``process_event`` job does (``workers/tasks.py``): ingest its events, run the runs
they produce concurrently (``runner.execute_run``), and keep its slots full from the inbox
while there is work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.db import in_unit_of_work, unit_of_work
from conexapi.models import ACTIVE_RUN_STATUSES, EventStatus, SyncRun, WebhookEvent
from conexapi.sync.context import SyncContext
from conexapi.sync.runner import execute_run
from conexapi.sync.service import ingest_events, take_events

log = structlog.get_logger(__name__)

#: Events ingested in one unit of work (a job's own, in slices of this size).
INGEST_BATCH = 25


async def process_events(
    ctx: SyncContext,
    event_ids: Sequence[int],
    concurrency: int,
    *,
    take_more_for: float = 0.0,
    redelivered: bool = True,
) -> None:
    """Inbox events → runs, run here and now, many at once on this process's loop.

    The job's events are ingested together in one unit of work (waiting for any another
    transaction holds), and the runs they produce execute concurrently: a worker process
    keeps many orders in flight while each waits on the marketplace and the ERP, instead
    of one. When the job may be a redelivery (its worker died), the runs of its events still
    active are executed too; a run another worker holds is left to it (``busy``), one
    whose worker died is taken over once its heartbeat is stale.

    For ``take_more_for`` seconds, whenever a third of the ``concurrency`` slots are free,
    the oldest events still waiting in the inbox are taken too, in the same way: however
    the API grouped notifications into jobs, and however few arrive at a time, a process
    keeps its slots full while there is work. The job's message is acknowledged when all
    of it is done; if the process dies first, the runs it took are in the database and
    the sweeper hands them on.
    """
    slots = max(concurrency, 1)
    gate = asyncio.Semaphore(slots)
    started: dict[int, asyncio.Task[None]] = {}

    async def one(run_id: int) -> None:
        async with gate:
            await execute_run(ctx, run_id)

    def start(run_ids: Iterable[int]) -> None:
        for run_id in run_ids:
            if run_id not in started:
                started[run_id] = asyncio.create_task(one(run_id))

    async def take(session: AsyncSession, **which: Any) -> list[int]:
        events = await take_events(session, **which)
        return await ingest_events(session, events, send_jobs=False) if events else []

    try:
        for i in range(0, len(event_ids), INGEST_BATCH):
            ids = event_ids[i : i + INGEST_BATCH]
            start(await in_unit_of_work(ctx.res.sessionmaker, partial(take, ids=ids)))
        if redelivered:
            async with ctx.res.sessionmaker() as session:
                start(
                    await session.scalars(
                        select(SyncRun.id).where(
                            SyncRun.webhook_event_id.in_(list(event_ids)),
                            SyncRun.status.in_(ACTIVE_RUN_STATUSES),
                        )
                    )
                )
    except BaseException:
        # The job fails, but the runs it started finish first: left on a loop nobody
        # drives, they would freeze mid-call. Its events not ingested go back to
        # "received", which the sweeper sends again at its next pass.
        await asyncio.gather(*started.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            async with unit_of_work(ctx.res.sessionmaker) as session:
                await session.execute(
                    update(WebhookEvent)
                    .where(
                        WebhookEvent.id.in_(list(event_ids)),
                        WebhookEvent.status == EventStatus.queued,
                    )
                    .values(status=EventStatus.received)
                )
        raise

    until = time.monotonic() + take_more_for
    refill = max(slots // 3, 1)
    while True:
        pending = [t for t in started.values() if not t.done()]
        free = slots - len(pending)
        if free >= refill and time.monotonic() < until:
            try:
                taken = await in_unit_of_work(ctx.res.sessionmaker, partial(take, limit=free))
            except Exception as exc:  # they stay in the inbox for their own jobs, the sweeper
                log.warning("events_take_failed", error=str(exc))
                until = 0.0
            else:
                start(taken)
            pending = [t for t in started.values() if not t.done()]
        if not pending:
            break
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    results = await asyncio.gather(*started.values(), return_exceptions=True)
    for run_id, result in zip(started, results, strict=True):
        if isinstance(result, BaseException):
            # The run stays claimed; its heartbeat stops and the sweeper takes it over.
            log.error("run_crashed", run_id=run_id, error=repr(result))


__all__ = ["process_events"]
