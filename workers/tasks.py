"""Thin task wrappers: open the process runtime, call a service, nothing else."""

from __future__ import annotations

import json
import os

from celery import Task
from sqlalchemy import text

from conexapi.kit import tasks
from conexapi.kit.context import get_request_id
from conexapi.kit.resources import Resources
from workers import signals  # noqa: F401  (connects the lifecycle signals)
from workers.celery_app import app
from workers.runtime import get_runtime


@app.task(name=tasks.PROBE, ignore_result=True)
def probe(probe_id: str) -> None:
    """A round trip through the worker: database, Redis and the per-process loop.

    Used by tests and operators to prove that a worker process consumes the queue and
    reaches its services; it writes what it saw under ``conexapi:probe:{id}`` in Redis.
    """

    async def _run(res: Resources) -> None:
        async with res.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if res.redis is not None:
            await res.redis.set(
                f"conexapi:probe:{probe_id}",
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "loop": id(get_runtime().loop),
                        "correlation_id": get_request_id(),
                    }
                ),
                ex=600,
            )

    get_runtime().run(_run)


@app.task(name=tasks.PROCESS_EVENT, bind=True, ignore_result=True)
def process_event(self: Task, *event_ids: int) -> None:
    """Inbox events become runs, executed concurrently in this process.

    The API sends the events of one inbox commit together; they are ingested in slices of
    ``INGEST_BATCH`` per unit of work, and the runs they produce share this process's loop
    (see ``conexapi.sync.batch.process_events``).
    """
    from conexapi.sync.batch import process_events
    from conexapi.sync.context import SyncContext

    info = self.request.delivery_info
    # Unknown (an eager call, another broker): assume the worst.
    redelivered = bool(info.get("redelivered", True)) if info else True

    async def _run(res: Resources) -> None:
        await process_events(
            SyncContext.of(res),
            event_ids,
            res.settings.worker_runs_per_process,
            take_more_for=res.settings.worker_take_more_seconds,
            # Only a redelivered job (its worker died) looks for its events' runs left
            # behind; the sweeper finds them too, later.
            redelivered=redelivered,
        )

    get_runtime().run(_run)


@app.task(name=tasks.EXECUTE_RUN, bind=True, ignore_result=True, max_retries=5)
def execute_run(self: Task, run_id: int) -> str:
    """Claim and run one sync run. A run still held by a live worker is tried again after
    the heartbeat timeout (a redelivery after that worker died takes it over then)."""
    from conexapi.models import RunStatus
    from conexapi.sync.claim import NotClaimed
    from conexapi.sync.context import SyncContext
    from conexapi.sync.runner import execute_run as run_it

    async def _run(res: Resources) -> RunStatus | NotClaimed:
        return await run_it(SyncContext.of(res), run_id)

    runtime = get_runtime()
    result = runtime.run(_run)
    if (
        result is NotClaimed.busy
        and self.request.delivery_info
        and self.request.delivery_info.get("redelivered")
    ):
        timeout = runtime.settings.run_heartbeat_timeout_seconds
        raise self.retry(countdown=min(timeout + 1, runtime.settings.broker_visibility_timeout))
    return str(result)


@app.task(name=tasks.SWEEP, ignore_result=True, expires=60)
def sweep() -> None:
    from conexapi.sync.sweeper import sweep as run_sweep

    async def _run(res: Resources) -> None:
        await run_sweep(res)

    get_runtime().run(_run)


# --- periodic jobs (beat) and what they fan out to -------------------------------------------


@app.task(name=tasks.RECONCILE, ignore_result=True)
def reconcile() -> None:
    """Beat: one ``reconcile_pipeline`` job per active pipeline."""
    from conexapi.reconcile.service import reconcile_all
    from conexapi.sync.context import SyncContext

    async def _run(res: Resources) -> None:
        await reconcile_all(SyncContext.of(res))

    get_runtime().run(_run)


@app.task(name=tasks.RECONCILE_PIPELINE, ignore_result=True)
def reconcile_pipeline(pipeline_id: int) -> str:
    from conexapi.reconcile.service import reconcile_pipeline as run_it
    from conexapi.sync.context import SyncContext

    async def _run(res: Resources) -> str:
        return (await run_it(SyncContext.of(res), pipeline_id)).status

    return get_runtime().run(_run)


@app.task(name=tasks.RECONCILIATION_REPORTS, ignore_result=True)
def reconciliation_reports() -> None:
    """Beat: yesterday's and today's report of every pipeline, one job each."""
    from conexapi.reconcile.report import report_all
    from conexapi.sync.context import SyncContext

    async def _run(res: Resources) -> None:
        await report_all(SyncContext.of(res))

    get_runtime().run(_run)


@app.task(name=tasks.BUILD_REPORT, ignore_result=True)
def build_report(pipeline_id: int, day_ordinal: int) -> None:
    from conexapi.reconcile.report import build_report_job
    from conexapi.sync.context import SyncContext

    async def _run(res: Resources) -> None:
        await build_report_job(SyncContext.of(res), pipeline_id, day_ordinal)

    get_runtime().run(_run)


@app.task(name=tasks.REFRESH_TOKENS, ignore_result=True)
def refresh_tokens() -> None:
    """Beat: refresh marketplace access tokens before they expire."""
    from conexapi.connections.tokens import refresh_expiring_tokens

    async def _run(res: Resources) -> None:
        await refresh_expiring_tokens(res)

    get_runtime().run(_run)


@app.task(name=tasks.PRUNE_INBOX, ignore_result=True)
def prune_inbox() -> None:
    """Beat: erase inbox payloads past their retention."""
    from conexapi.reconcile.housekeeping import prune_inbox_payloads

    async def _run(res: Resources) -> None:
        await prune_inbox_payloads(res)

    get_runtime().run(_run)
