"""Reconcile against the Mercado Libre and Siigo sandboxes, in this process on SQLite."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from conexapi.db import unit_of_work
from conexapi.models import Connection, ConnectionStatus, Pipeline, SyncCursor, SyncRun
from conexapi.reconcile.backfill import backfill
from conexapi.reconcile.service import reconcile_pipeline
from conexapi.sync.service import get_or_create_order, request_sync
from tests.support.world import world


async def test_reconcile_finds_every_order_and_invoices_each_once(tmp_path: Path) -> None:
    # A look-back of three days: every tick reads all the generated orders again.
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        ids = await w.generate(8, seed=3)
        result = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert result.status == "done"
        assert result.totals.created == 8 and result.totals.syncs_requested == 8
        await w.run_queued()
        orders = await w.orders()
        assert {i: orders[i].state for i in ids} == {i: "invoiced" for i in ids}
        assert {orders[i].first_seen_via for i in ids} == {"reconcile"}
        async with w.res.sessionmaker() as s:
            triggers = Counter(await s.scalars(select(SyncRun.trigger)))
        assert triggers == {"reconcile": 8}
        invoices = await w.invoices()
        assert Counter(i["idempotency_key"] for i in invoices) == {f"ML{i}": 1 for i in ids}
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}  # what Siigo received

        # Nothing changed: the next tick reads the window again and asks for nothing.
        runs = await w.run_count()
        again = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert again.status == "done" and again.totals.orders_seen == 8
        assert again.totals.syncs_requested == 0
        assert await w.run_queued() == 0
        assert await w.run_count() == runs
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}


async def test_a_changed_order_is_synced_again_and_only_that_one(tmp_path: Path) -> None:
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        ids = await w.generate(4, seed=5)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        await w.run_queued()
        resp = await w.ml.patch(f"/_sandbox/orders/{ids[0]}", json={"status": "cancelled"})
        resp.raise_for_status()
        result = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert (result.totals.changed, result.totals.syncs_requested) == (1, 1)
        await w.run_queued()
        orders = await w.orders()
        assert orders[ids[0]].state == "cancelled_after_invoice"
        assert {orders[i].state for i in ids[1:]} == {"invoiced"}
        assert len(await w.invoices()) == 4
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}  # no new POST


async def test_the_cursor_moves_only_when_a_window_is_done(tmp_path: Path) -> None:
    async with world(tmp_path, reconcile_max_window_seconds=6 * 3600) as w:
        await w.generate(6, seed=9)
        async with w.res.sessionmaker() as s:
            assert await s.scalar(select(SyncCursor)) is None
        done = await reconcile_pipeline(w.ctx, w.pipeline_id)  # creates the cursor
        assert done.status == "done"
        async with w.res.sessionmaker() as s:
            cursor = await s.scalar(select(SyncCursor))
            assert cursor is not None
            first_position = cursor.position
        assert abs(first_position - datetime.now(UTC)) < timedelta(minutes=1)

        # Put the cursor a day back and break the marketplace's search once.
        async with w.res.sessionmaker() as s:
            cursor = await s.scalar(select(SyncCursor))
            assert cursor is not None
            cursor.position = first_position - timedelta(days=1)
            await s.commit()
        cfg = {"fail_next": [{"route": "GET /orders/search", "status": 503, "times": 1}]}
        (await w.ml.patch("/_sandbox/config", json=cfg)).raise_for_status()
        failed = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert failed.status == "failed" and failed.error and failed.error.startswith("transient")
        async with w.res.sessionmaker() as s:
            cursor = await s.scalar(select(SyncCursor))
            assert cursor is not None
            assert cursor.position == first_position - timedelta(days=1)
            assert cursor.last_error

        healed = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert healed.status == "done" and healed.windows >= 4  # a day in 6-hour windows
        async with w.res.sessionmaker() as s:
            cursor = await s.scalar(select(SyncCursor))
            assert cursor is not None
            assert cursor.position > first_position and cursor.last_error is None


async def test_a_reconcile_already_running_makes_the_second_one_wait_out(
    tmp_path: Path,
) -> None:
    from conexapi.kit.locks import leases_for

    async with world(tmp_path) as w:
        leases = leases_for(None, "conexapi:lease:")
        async with leases.hold(f"reconcile:{w.pipeline_id}", ttl=30, wait=0):
            busy = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert busy.status == "busy"
        assert (await reconcile_pipeline(w.ctx, w.pipeline_id)).status == "done"


async def test_backfill_of_a_synced_range_creates_nothing(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        ids = await w.generate(5, seed=21)
        since = datetime.now(UTC) - timedelta(days=2)
        first = await backfill(w.res, w.pipeline_id, since)
        assert first.totals.created == 5 and first.ran_here == 5  # embedded: run here
        orders = await w.orders()
        assert {orders[i].state for i in ids} == {"invoiced"}
        runs, invoices = await w.run_count(), await w.invoices()

        seen: list[int] = []
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}
        second = await backfill(
            w.res, w.pipeline_id, since, on_window=lambda _w, r: seen.append(r.orders_seen)
        )
        assert sum(seen) == second.totals.orders_seen == 5
        assert second.totals.syncs_requested == 0 and second.ran_here == 0
        assert await w.run_count() == runs
        assert await w.invoices() == invoices
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}
        async with w.res.sessionmaker() as s:
            assert await s.scalar(select(SyncCursor)) is None  # backfill leaves the cursor


async def test_a_paused_erp_connection_holds_the_cursor_and_its_orders_resume_after(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        ids = await w.generate(3, seed=12)
        async with unit_of_work(w.res.sessionmaker) as s:
            pipeline = await s.get(Pipeline, w.pipeline_id)
            assert pipeline is not None
            target = await s.get(Connection, pipeline.target_connection_id)
            assert target is not None
            target.status = ConnectionStatus.paused
            # A notification came meanwhile: its run waits for the connection.
            order = await get_or_create_order(s, w.pipeline_id, ids[0], "webhook")
            await request_sync(s, order, "webhook")
        await w.run_queued()
        assert (await w.orders())[ids[0]].state == "pending"
        assert await w.siigo_received() == []  # its run waited without a call to Siigo

        skipped = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert skipped.status == "skipped" and "ERP connection is paused" in (skipped.error or "")
        async with w.res.sessionmaker() as s:
            assert await s.scalar(select(SyncCursor)) is None

        async with unit_of_work(w.res.sessionmaker) as s:
            target = await s.get(Connection, target.id)
            assert target is not None
            target.status = ConnectionStatus.active
        done = await reconcile_pipeline(w.ctx, w.pipeline_id)
        assert done.status == "done" and done.totals.syncs_requested == 3
        await w.run_queued()
        orders = await w.orders()
        assert {orders[i].state for i in ids} == {"invoiced"}
        assert orders[ids[0]].first_seen_via == "webhook"
        assert await w.invoice_posts() == {f"ML{i}": 1 for i in ids}
