"""Reconcile, reports and backfill as production runs them: MariaDB, Redis, worker processes,
the API and both sandboxes on localhost ports (``tests/support/stack.py``)."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conexapi.models import OrderSync, SyncCursor, SyncRun
from conexapi.sync.days import local_date
from connectors.colombia.zone import TIME_ZONE
from tests.support.stack import Stack, running_stack, settings_env
from workers.celery_app import create_celery

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}


async def _unlimited_siigo(st: Stack) -> None:
    await st.siigo.patch("/_sandbox/config", json={"rate_limit": {"enabled": False}})


RECONCILE: dict[str, Any] = {
    # Every generated order lies in the last day; the pipeline is newer than all of them.
    "reconcile_lookback_seconds": 3 * 86400.0,
    "reconcile_lag_seconds": 0.0,
    # Siigo's pace (100 requests a minute) has tests of its own; here it would only slow.
    "connectors": {
        "siigo": {"requests_per_minute": 100_000},
        "mercadolibre": {"requests_per_minute": 100_000},
    },
    "before_seed": _unlimited_siigo,
}


def by_key(invoices: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(inv.get("idempotency_key")) for inv in invoices)


def settled(ids: set[str], states: set[str]) -> Any:
    def check(rows: list[dict[str, Any]]) -> bool:
        seen = {r["external_order_id"]: r["state"] for r in rows}
        return all(seen.get(i) in states for i in ids)

    return check


async def count(st: Stack, model: Any) -> int:
    async with st.res.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def cursor_runs(st: Stack) -> datetime | None:
    async with st.res.sessionmaker() as s:
        cursor = await s.scalar(select(SyncCursor))
        return cursor.last_run_at if cursor else None


async def beat_job(st: Stack, task: str) -> None:
    """Send a periodic job as beat does, to the worker processes."""
    celery = create_celery(st.settings)
    await asyncio.to_thread(celery.send_task, task)


async def test_thirty_percent_of_notifications_lost_reconcile_invoices_every_order_once(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=20, mix=PAID_ONLY, worker_count=2, **RECONCILE
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:20]
        # One attempt per notification: a dropped one is never delivered (missed feeds). The
        # others are answered, however slowly (the harness judges no answer time).
        resp = await st.ml.patch("/_sandbox/config", json={"notify_max_attempts": 1})
        resp.raise_for_status()
        seeds = random.Random(30).sample(range(10_000), len(ids))
        results = [
            await st.notify(i, drop_rate=0.3, seed=s) for i, s in zip(ids, seeds, strict=True)
        ]
        dropped = {i for i, r in zip(ids, results, strict=True) if r["notifications"][0]["missed"]}
        delivered = set(ids) - dropped
        assert 0 < len(dropped) < len(ids)
        await st.wait_for(settled(delivered, {"invoiced"}))
        assert dropped.isdisjoint({r["external_order_id"] for r in await st.orders()})

        await beat_job(st, "conexapi.reconcile")  # beat's tick, run by a worker
        rows = await st.wait_for(settled(set(ids), {"invoiced"}), seconds=180)
        await st.wait_quiet()  # anything late has happened by now
        invoices = await st.invoices()
        assert by_key(invoices) == Counter({f"ML{i}": 1 for i in ids})
        await st.assert_posts_justified(ids)
        posts = len(await st.invoice_posts())
        seen = {r["external_order_id"]: r["first_seen_via"] for r in rows}
        assert {seen[i] for i in dropped} == {"reconcile"}
        assert {seen[i] for i in delivered} == {"webhook"}

        # The next tick compares them all again and asks for nothing.
        runs, last = await count(st, SyncRun), await cursor_runs(st)
        await beat_job(st, "conexapi.reconcile")
        deadline = time.monotonic() + 120
        while await cursor_runs(st) == last:
            assert time.monotonic() < deadline, st.workers.logs() if st.workers else ""
            await asyncio.sleep(0.2)
        await st.wait_quiet()
        assert await count(st, SyncRun) == runs
        assert by_key(await st.invoices()) == by_key(invoices)
        assert len(await st.invoice_posts()) == posts


async def test_deleted_edited_and_cancelled_invoices_appear_in_the_report_by_kind(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=6, mix=PAID_ONLY, worker_count=1, **RECONCILE
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:6]
        await asyncio.gather(*[st.notify(i) for i in ids])
        await st.wait_for(settled(set(ids), {"invoiced"}))
        made = {inv["idempotency_key"][2:]: inv for inv in await st.invoices()}
        deleted, edited, cancelled = ids[:3]
        (
            await st.siigo.delete(f"/_sandbox/invoices/{made[deleted]['invoice']['id']}")
        ).raise_for_status()
        (
            await st.siigo.patch(
                f"/_sandbox/invoices/{made[edited]['invoice']['id']}", json={"total": 999}
            )
        ).raise_for_status()
        (
            await st.ml.patch(f"/_sandbox/orders/{cancelled}", json={"status": "cancelled"})
        ).raise_for_status()
        asked = datetime.now(UTC)

        await beat_job(st, "conexapi.reconciliation_reports")  # yesterday's and today's
        headers = {"X-Merchant-Id": str(st.setup.merchant_id)}
        params = {"pipeline_id": st.setup.pipeline_id}
        deadline = time.monotonic() + 180
        while True:
            page = (await st.api.get("/api/v1/reports", params=params, headers=headers)).json()
            fresh = [r for r in page["items"] if datetime.fromisoformat(r["generated_at"]) > asked]
            if len(fresh) == 2:
                break
            assert time.monotonic() < deadline, (page, st.workers.logs() if st.workers else "")
            await asyncio.sleep(0.3)
        today = local_date(datetime.now(UTC), TIME_ZONE)
        assert {r["day"] for r in fresh} == {
            (today - timedelta(days=1)).isoformat(),
            today.isoformat(),
        }

        reports = [
            (await st.api.get(f"/api/v1/reports/{r['id']}", headers=headers)).json() for r in fresh
        ]
        kinds = {(ln["kind"], ln["external_order_id"]) for r in reports for ln in r["lines"]}
        odd = st.setup.order_ids[-1]  # the seeded order nobody notified: never invoiced
        assert kinds == {
            ("missing_invoice", odd),
            ("missing_invoice", deleted),
            ("amount_mismatch", edited),
            ("cancelled_after_invoice", cancelled),
        }
        assert sum(r["totals"]["orders_to_invoice"] for r in reports) == 6  # one cancelled
        assert sum(r["totals"]["invoices_found"] for r in reports) == 4  # one deleted

        with_lines = next(r for r in reports if r["lines"])
        resp = await st.api.get(f"/api/v1/reports/{with_lines['id']}.csv", headers=headers)
        rows = list(csv.reader(io.StringIO(resp.text)))
        assert rows[0] == ["field", "value"]
        table = rows[rows.index([]) + 1 :]
        assert {(r[0], r[1]) for r in table[1:]} == {
            (ln["kind"], ln["external_order_id"]) for ln in with_lines["lines"]
        }


def _backfill(st: Stack, since: str) -> subprocess.CompletedProcess[str]:
    assert st.setup is not None
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "conexapi.cli",
            "backfill",
            "--pipeline",
            str(st.setup.pipeline_id),
            "--since",
            since,
        ],
        env=settings_env(st.settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_backfill_over_a_range_already_synced_creates_nothing(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=6, mix=PAID_ONLY, worker_count=1, **RECONCILE
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:6]
        await asyncio.gather(*[st.notify(i) for i in ids[:3]])  # half never notified
        await st.wait_for(settled(set(ids[:3]), {"invoiced"}))
        since = (local_date(datetime.now(UTC), TIME_ZONE) - timedelta(days=2)).isoformat()

        first = await asyncio.to_thread(_backfill, st, since)
        assert first.returncode == 0, first.stderr
        # The three never notified, and the seeded order with an unmapped SKU.
        assert f"{len(st.setup.order_ids) - 3} new" in first.stdout, first.stdout
        await st.wait_for(settled(set(ids), {"invoiced"}), seconds=180)
        await st.wait_quiet()
        await st.assert_posts_justified(ids)
        before = (
            await count(st, OrderSync),
            await count(st, SyncRun),
            by_key(await st.invoices()),
            len(await st.invoice_posts()),
        )
        assert before[2] == Counter({f"ML{i}": 1 for i in ids})

        again = await asyncio.to_thread(_backfill, st, since)
        assert again.returncode == 0, again.stderr
        assert "0 new, 0 changed, 0 syncs queued" in again.stdout, again.stdout
        await st.wait_quiet()  # a job it sent has been consumed by now
        after = (
            await count(st, OrderSync),
            await count(st, SyncRun),
            by_key(await st.invoices()),
            len(await st.invoice_posts()),
        )
        assert after == before
        async with st.res.sessionmaker() as s:
            assert await s.scalar(select(SyncCursor)) is None  # the periodic cursor untouched
