"""Exactly once with an ERP that ignores idempotency keys, through the production runner
(SQLite, the Mercado Libre sandbox, an in-memory keyless ERP): a create that timed out
after the ERP made the document is looked up, never posted again."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from conexapi.db import unit_of_work
from conexapi.models import OrderState, OrderSync, RunStatus, SyncRun, utcnow
from conexapi.sync.service import get_or_create_order, request_sync
from conexapi.sync.sweeper import sweep
from tests.support.erp import KeylessErp
from tests.support.world import World, world


def keyless(w: World) -> KeylessErp:
    erp = KeylessErp(w.ctx.integrations.erp("siigo"))
    w.ctx.integrations.erps["siigo"] = erp
    return erp


async def notify(w: World, order_id: str) -> None:
    async with unit_of_work(w.res.sessionmaker) as s:
        order = await get_or_create_order(s, w.pipeline_id, order_id, "webhook")
        assert await request_sync(s, order, "webhook") is not None


async def state_and_runs(w: World, order_id: str) -> tuple[OrderSync, list[str]]:
    async with w.res.sessionmaker() as s:
        order = await s.scalar(
            select(OrderSync).where(
                OrderSync.pipeline_id == w.pipeline_id, OrderSync.external_order_id == order_id
            )
        )
        assert order is not None
        runs = await s.scalars(
            select(SyncRun.status).where(SyncRun.order_sync_id == order.id).order_by(SyncRun.id)
        )
        return order, list(runs)


async def test_a_timeout_after_the_erp_created_the_document_is_looked_up_not_reposted(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        erp = keyless(w)
        [order_id] = await w.generate(1, seed=41)
        erp.lost_answers = 1
        await notify(w, order_id)
        assert await w.run_queued() == 1

        order, runs = await state_and_runs(w, order_id)
        assert order.state == OrderState.invoiced
        assert order.erp_document_id == erp.documents[0].id
        assert runs == [RunStatus.succeeded]
        assert erp.posts == [f"ML{order_id}"]  # received once, answered never
        assert len(erp.documents) == 1 and erp.lookups == 1
        assert await w.invoice_posts() == Counter()  # Siigo itself was not the ERP


async def test_a_retry_after_a_lost_answer_looks_the_document_up_before_posting(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        erp = keyless(w)
        [order_id] = await w.generate(1, seed=42)
        # The answer is lost and the lookup right after it times out too: the run retries.
        erp.lost_answers, erp.failing_lookups = 1, 1
        await notify(w, order_id)
        assert await w.run_queued() == 1
        order, runs = await state_and_runs(w, order_id)
        assert order.state == OrderState.retry_scheduled
        assert runs == [RunStatus.retry_scheduled]
        assert len(erp.documents) == 1

        async with unit_of_work(w.res.sessionmaker) as s:
            await s.execute(
                update(OrderSync)
                .where(OrderSync.id == order.id)
                .values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        assert (await sweep(w.res)).retries_started == 1
        assert await w.run_queued() == 1

        order, runs = await state_and_runs(w, order_id)
        assert order.state == OrderState.invoiced
        assert order.erp_document_id == erp.documents[0].id
        assert runs == [RunStatus.retry_scheduled, RunStatus.succeeded]
        assert erp.posts == [f"ML{order_id}"]
        assert len(erp.documents) == 1 and erp.lookups == 2


async def test_a_new_order_is_posted_once_without_a_lookup(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        erp = keyless(w)
        [order_id] = await w.generate(1, seed=43)
        await notify(w, order_id)
        assert await w.run_queued() == 1
        order, _ = await state_and_runs(w, order_id)
        assert order.state == OrderState.invoiced
        assert erp.posts == [f"ML{order_id}"] and erp.lookups == 0
