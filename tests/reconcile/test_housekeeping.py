"""Pruning inbox payloads, and the beat jobs wired to their services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.resources import open_resources
from conexapi.models import EventStatus, WebhookEvent, utcnow
from conexapi.reconcile import housekeeping
from conexapi.reconcile.housekeeping import prune_inbox_payloads
from conexapi.settings import Settings
from workers.celery_app import create_celery

BUYER = {"resource": "/orders/1", "buyer": {"doc_number": "1032456789"}}


async def test_old_finished_payloads_are_erased_and_the_rest_kept(
    settings_factory: Callable[..., Settings],
    migrated_db: Callable[[str], Any],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await migrated_db(sqlite_url)
    monkeypatch.setattr(housekeeping, "PRUNE_BATCH", 3)  # several batches
    res = await open_resources(settings_factory(inbox_payload_retention_days=30))
    now = utcnow()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    try:
        async with unit_of_work(res.sessionmaker) as s:
            rows = [
                *[(f"old-{i}", EventStatus.processed, old) for i in range(5)],
                ("old-ignored", EventStatus.ignored, old),
                ("old-failed", EventStatus.failed, old),
                ("old-received", EventStatus.received, old),
                ("old-queued", EventStatus.queued, old),
                ("recent", EventStatus.processed, recent),
            ]
            for key, status, received in rows:
                s.add(
                    WebhookEvent(
                        connector="mercadolibre",
                        dedupe_key=key,
                        status=status,
                        payload=BUYER,
                        received_at=received,
                        order_id="1",
                    )
                )
        assert await prune_inbox_payloads(res, now=now) == 7
        async with res.sessionmaker() as s:
            events = {e.dedupe_key: e for e in await s.scalars(select(WebhookEvent))}
            # SQL NULL, not a JSON null: the column is empty.
            nulls = await s.scalar(
                text("SELECT count(*) FROM webhook_events WHERE payload IS NULL")
            )
        assert len(events) == 10  # rows stay
        pruned = {k for k, e in events.items() if e.payload is None}
        assert pruned == {f"old-{i}" for i in range(5)} | {"old-ignored", "old-failed"}
        assert nulls == 7
        assert all(events[k].order_id == "1" for k in pruned)
        assert await prune_inbox_payloads(res, now=now) == 0
    finally:
        await res.aclose()


def test_beat_runs_every_job_of_the_issue_at_its_interval(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        reconcile_interval_seconds=120,
        report_interval_seconds=1800,
        token_refresh_interval_seconds=240,
        prune_interval_seconds=7200,
    )
    app = create_celery(settings)
    schedule = app.conf.beat_schedule
    expected = {
        "sweeper": ("conexapi.sweep", settings.sweeper_interval_seconds),
        "reconcile": ("conexapi.reconcile", 120),
        "reconciliation-reports": ("conexapi.reconciliation_reports", 1800),
        "token-refresh": ("conexapi.refresh_tokens", 240),
        "inbox-prune": ("conexapi.prune_inbox", 7200),
    }
    assert {k: (v["task"], v["schedule"]) for k, v in schedule.items()} == expected
    from workers import tasks

    for entry in schedule.values():
        assert entry["task"] in tasks.app.tasks  # a worker knows the job
        # A tick not started within its interval is dropped; the next one does its work.
        assert 0 < entry["options"]["expires"] <= entry["schedule"]
    assert app.conf.beat_scheduler == "workers.beat:SingleBeatScheduler"


def test_the_beat_tasks_run_their_jobs_in_a_worker_runtime(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    """The thin task wrappers, called as a worker calls them (their own runtime loop)."""
    import asyncio

    from workers import tasks
    from workers.runtime import close_runtime, configure_runtime

    settings = settings_factory(inbox_payload_retention_days=1)

    async def seed() -> None:
        res = await open_resources(settings)
        try:
            async with unit_of_work(res.sessionmaker) as s:
                s.add(
                    WebhookEvent(
                        connector="mercadolibre",
                        dedupe_key="old",
                        status=EventStatus.processed,
                        payload=BUYER,
                        received_at=utcnow() - timedelta(days=2),
                    )
                )
        finally:
            await res.aclose()

    async def payload() -> Any:
        res = await open_resources(settings)
        try:
            async with res.sessionmaker() as s:
                return await s.scalar(select(WebhookEvent.payload))
        finally:
            await res.aclose()

    from conexapi.migrate import upgrade

    upgrade(sqlite_url)
    asyncio.run(seed())
    had_sender = jobs.has_sender()
    configure_runtime(settings)
    try:
        tasks.prune_inbox()
        tasks.refresh_tokens()  # nothing linked: nothing to refresh, and no error
        tasks.reconcile()  # no pipeline: no job
        tasks.reconciliation_reports()
    finally:
        close_runtime()
        configure_runtime(None)
        if not had_sender:
            jobs.set_sender(None)  # the runtime installed one for its own jobs
    assert asyncio.run(payload()) is None
