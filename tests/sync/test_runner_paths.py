"""The runner's other endings, each through the production runner (SQLite, both sandboxes):
what the order and its run say afterwards, and what Siigo RECEIVED (its request log).

Where nothing may be sent, Siigo's log is checked empty, then a control order is run through
the same world and its invoice POST seen arriving: the emptiness is not a blind spot.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from conexapi.db import unit_of_work
from conexapi.kit import ratelimit
from conexapi.models import (
    Connection,
    OrderState,
    OrderSync,
    Pipeline,
    PipelineStatus,
    RunStatus,
    SyncRun,
    utcnow,
)
from conexapi.sync.retries import resume_waiting_orders
from conexapi.sync.service import get_or_create_order, request_sync
from conexapi.sync.sweeper import sweep
from connectors.models import Order
from tests.support.world import World, world


async def notified(w: World, order_id: str) -> int:
    """What a notification for the order does: its row, and a run queued for it."""
    async with unit_of_work(w.res.sessionmaker) as s:
        order = await get_or_create_order(s, w.pipeline_id, order_id, "webhook")
        run = await request_sync(s, order, "webhook")
        assert run is not None
        return run.id


async def order_and_runs(w: World, order_id: str) -> tuple[OrderSync, list[SyncRun]]:
    async with w.res.sessionmaker() as s:
        order = await s.scalar(
            select(OrderSync).where(
                OrderSync.pipeline_id == w.pipeline_id, OrderSync.external_order_id == order_id
            )
        )
        assert order is not None
        runs = list(
            await s.scalars(
                select(SyncRun).where(SyncRun.order_sync_id == order.id).order_by(SyncRun.id)
            )
        )
        return order, runs


async def patch_order(w: World, order_id: str, changes: dict[str, Any]) -> None:
    resp = await w.ml.patch(f"/_sandbox/orders/{order_id}", json=changes)
    resp.raise_for_status()


async def invoiced_once(w: World, order_id: str) -> None:
    order, _ = await order_and_runs(w, order_id)
    assert order.state == OrderState.invoiced and order.erp_document_id
    kept = Counter(i["idempotency_key"] for i in await w.invoices())
    assert kept[f"ML{order_id}"] == 1


async def test_a_fraud_flagged_order_waits_for_a_person_and_nothing_reaches_siigo(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        flagged, control = await w.generate(2, seed=31)
        tags = (await w.ml_order(flagged))["tags"]
        await patch_order(w, flagged, {"tags": [*tags, "fraud_risk_detected"]})
        await notified(w, flagged)
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, flagged)
        assert order.state == OrderState.needs_attention
        assert (order.last_error_class, order.last_error_code) == ("data", "fraud_risk_detected")
        assert [(r.status, r.error_code) for r in runs] == [
            (RunStatus.failed, "fraud_risk_detected")
        ]
        assert await w.siigo_received() == []
        # Not retried by itself: the sweeper leaves it where it is.
        await sweep(w.res)
        assert await w.queued_runs() == []

        await notified(w, control)
        assert await w.run_queued() == 1
        await invoiced_once(w, control)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1})


async def test_an_order_waiting_for_payment_sends_nothing_until_paid(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        [pending] = await w.generate(1, seed=32, pending_rate=1.0)
        [control] = await w.generate(1, seed=33)
        assert (await w.ml_order(pending))["status"] != "paid"
        await notified(w, pending)
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, pending)
        assert order.state == OrderState.waiting_payment and order.next_attempt_at is None
        assert [r.status for r in runs] == [RunStatus.waiting]
        assert await w.siigo_received() == []
        await sweep(w.res)  # nothing to retry: the payment's notification wakes it
        assert await w.queued_runs() == []
        await notified(w, control)
        assert await w.run_queued() == 1
        await invoiced_once(w, control)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1})

        # The buyer pays; Mercado Libre notifies the change.
        raw = await w.ml_order(pending)
        payment = {**copy.deepcopy(raw["payments"][0]), "status": "approved"}
        await patch_order(
            w,
            pending,
            {
                "status": "paid",
                "paid_amount": payment["total_paid_amount"],
                "payments": [payment],
                "tags": ["paid", "not_delivered"],
            },
        )
        await notified(w, pending)
        assert await w.run_queued() == 1
        await invoiced_once(w, pending)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1, f"ML{pending}": 1})


async def test_billing_info_still_processing_is_retried_and_invoiced_once_complete(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        [processing] = await w.generate(1, seed=34, processing_rate=1.0)
        [control] = await w.generate(1, seed=35)
        await notified(w, processing)
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, processing)
        assert order.state == OrderState.retry_scheduled and order.next_attempt_at is not None
        assert order.last_error_code == "billing_info_pending"
        assert [(r.status, r.error_code) for r in runs] == [
            (RunStatus.retry_scheduled, "billing_info_pending")
        ]
        # Nothing sent: not even the customer, whose data is what is missing.
        assert await w.siigo_received() == []
        await notified(w, control)
        assert await w.run_queued() == 1
        await invoiced_once(w, control)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1})

        # Mercado Libre finishes processing the buyer's fiscal data; the retry comes due.
        billing = (await w.ml.get(f"/_sandbox/orders/{processing}")).json()["billing_info"]
        billing["buyer"]["billing_info"].update(
            {
                "name": "Ana",
                "last_name": "Díaz Rojas",
                "identification": {"type": "CC", "number": "1032456789"},
                "address": {
                    "street_name": "Calle 80",
                    "street_number": "# 10-20",
                    "city_name": "Bogotá",
                    "state": {"name": "Bogotá D.C."},
                    "zip_code": None,
                    "country_id": "CO",
                },
                "attributes": {"cust_type": "CO"},
            }
        )
        await patch_order(w, processing, {"billing_info": billing})
        await make_due(w, processing)
        assert (await sweep(w.res)).retries_started == 1
        assert await w.run_queued() == 1
        await invoiced_once(w, processing)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1, f"ML{processing}": 1})


async def make_due(w: World, order_id: str) -> None:
    async with unit_of_work(w.res.sessionmaker) as s:
        await s.execute(
            update(OrderSync)
            .where(OrderSync.pipeline_id == w.pipeline_id, OrderSync.external_order_id == order_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_an_order_bound_to_another_key_is_held_and_nothing_is_sent(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        bound, control = await w.generate(2, seed=36)
        async with unit_of_work(w.res.sessionmaker) as s:
            # Bound earlier to a key that is not this order's (as a forged or malformed
            # notification could have bound it): sending under either would be wrong.
            order = await get_or_create_order(s, w.pipeline_id, bound, "webhook")
            order.idempotency_key = f"ML{control}"
            await request_sync(s, order, "webhook")
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, bound)
        assert order.state == OrderState.needs_attention
        assert [(r.status, r.error_code) for r in runs] == [
            (RunStatus.failed, "idempotency_key_mismatch")
        ]
        # The order itself says why, where an operator looks first.
        assert order.last_error_code == "idempotency_key_mismatch"
        assert order.last_error_message and f"ML{control}" in order.last_error_message
        assert order.idempotency_key == f"ML{control}"  # left as found, for a person
        assert await w.siigo_received() == []
        await notified(w, control)
        assert await w.run_queued() == 1
        await invoiced_once(w, control)
        assert await w.invoice_posts() == Counter({f"ML{control}": 1})


async def test_a_paused_pipeline_holds_its_orders_and_resuming_invoices_them(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        [held] = await w.generate(1, seed=37)
        await set_pipeline_status(w, PipelineStatus.paused)
        await notified(w, held)
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, held)
        assert order.state == OrderState.pending and order.attempts == 0
        assert [(r.status, r.error_class) for r in runs] == [(RunStatus.waiting, "paused")]
        assert await w.siigo_received() == []  # not even a token
        await sweep(w.res)
        assert await w.queued_runs() == []  # it waits for the pipeline, not the sweeper

        await set_pipeline_status(w, PipelineStatus.active)
        async with unit_of_work(w.res.sessionmaker) as s:
            assert await resume_waiting_orders(s, [w.pipeline_id]) == 1
        assert await w.run_queued() == 1
        await invoiced_once(w, held)
        assert await w.invoice_posts() == Counter({f"ML{held}": 1})


async def set_pipeline_status(w: World, status: PipelineStatus) -> None:
    async with unit_of_work(w.res.sessionmaker) as s:
        await s.execute(update(Pipeline).where(Pipeline.id == w.pipeline_id).values(status=status))


async def test_a_change_during_a_run_is_read_by_the_rerun_it_requested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path) as w:
        [oid] = await w.generate(1, seed=38)
        marketplace = w.ctx.integrations.marketplace("mercadolibre")
        fetch = marketplace.fetch_order
        fetched = asyncio.Event()
        carry_on = asyncio.Event()

        async def fetch_then_hold(token: str, order_id: str) -> Order:
            order = await fetch(token, order_id)
            fetched.set()
            await carry_on.wait()  # the run holds what it read; the order changes meanwhile
            return order

        monkeypatch.setattr(marketplace, "fetch_order", fetch_then_hold)
        first = await notified(w, oid)
        running = asyncio.create_task(execute(w, first))
        await asyncio.wait_for(fetched.wait(), 60)

        # Cancelled while the run is in flight; the notification of it meets a running run.
        await patch_order(w, oid, {"status": "cancelled"})
        async with unit_of_work(w.res.sessionmaker) as s:
            order = await get_or_create_order(s, w.pipeline_id, oid, "webhook")
            assert await request_sync(s, order, "webhook") is None
            assert order.rerun_requested
        carry_on.set()
        await asyncio.wait_for(running, 60)

        # The first run invoiced what it had read, and queued the rerun it was asked for.
        order, runs = await order_and_runs(w, oid)
        assert [r.status for r in runs] == [RunStatus.succeeded, RunStatus.queued]
        assert order.state == OrderState.invoiced and not order.rerun_requested
        assert await w.run_queued() == 1
        order, runs = await order_and_runs(w, oid)
        assert order.state == OrderState.cancelled_after_invoice
        assert [r.status for r in runs] == [RunStatus.succeeded, RunStatus.succeeded]
        assert await w.invoice_posts() == Counter({f"ML{oid}": 1})


async def execute(w: World, run_id: int) -> None:
    from conexapi.sync.runner import execute_run

    await execute_run(w.ctx, run_id)


async def test_transient_failures_give_up_after_max_retry_hours(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        [oid] = await w.generate(1, seed=39)
        refuse = {"fail_next": [{"route": "POST /v1/invoices", "status": 503, "times": 2}]}
        (await w.siigo.patch("/_sandbox/config", json=refuse)).raise_for_status()
        await notified(w, oid)
        assert await w.run_queued() == 1
        order, runs = await order_and_runs(w, oid)
        # Within the pipeline's max_retry_hours (48 by default): retried later.
        assert order.state == OrderState.retry_scheduled and order.next_attempt_at is not None
        assert [r.status for r in runs] == [RunStatus.retry_scheduled]

        # Two days later (the order first seen that long ago), the retry fails again.
        async with unit_of_work(w.res.sessionmaker) as s:
            await s.execute(
                update(OrderSync)
                .where(OrderSync.id == order.id)
                .values(created_at=utcnow() - timedelta(hours=49))
            )
        await make_due(w, oid)
        assert (await sweep(w.res)).retries_started == 1
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, oid)
        assert order.state == OrderState.failed
        assert order.last_error_message and order.last_error_message.startswith(
            "gave up after 2 attempts"
        )
        assert order.next_attempt_at is None  # no attempt will come
        assert [(r.status, r.error_class) for r in runs] == [
            (RunStatus.retry_scheduled, "transient"),
            (RunStatus.failed, "transient"),
        ]
        # Each attempt sent the invoice once, under the order's key; Siigo kept none.
        assert await w.invoice_posts() == Counter({f"ML{oid}": 2})
        assert await w.invoices() == []
        await make_due(w, oid)  # even with a stale date, a failed order is not retried
        assert (await sweep(w.res)).retries_started == 0
        assert await w.queued_runs() == []


async def set_erp_budget(w: World, requests_per_minute: int) -> None:
    async with unit_of_work(w.res.sessionmaker) as s:
        pipeline = await s.get(Pipeline, w.pipeline_id)
        assert pipeline is not None
        await s.execute(
            update(Connection)
            .where(Connection.id == pipeline.target_connection_id)
            .values(requests_per_minute=requests_per_minute)
        )


async def test_a_run_without_budget_goes_back_to_the_database_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path) as w:
        [oid] = await w.generate(1, seed=41)
        # Two requests a minute for the company (its connection's own budget): a run's second
        # Siigo call has no slot for about a minute, far past the longest wait in a slot.
        await set_erp_budget(w, 2)
        await notified(w, oid)
        assert await w.run_queued() == 1

        order, runs = await order_and_runs(w, oid)
        assert order.state == OrderState.retry_scheduled
        assert order.attempts == 0  # a wait for the budget is not an attempt...
        assert [(r.status, r.error_class, r.error_code) for r in runs] == [
            (RunStatus.waiting, "budget", "rate_budget")  # ...nor a failure
        ]
        assert order.next_attempt_at is not None
        wait = (order.next_attempt_at - utcnow()).total_seconds()
        assert 30 < wait < 90, wait  # when the budget has a slot, not an exponential back-off
        assert await w.invoice_posts() == Counter()

        # Due again before the budget has a slot: back to the database again, still no attempt.
        await make_due(w, oid)
        assert (await sweep(w.res)).retries_started == 1
        assert await w.run_queued() == 1
        order, runs = await order_and_runs(w, oid)
        assert (order.state, order.attempts, len(runs)) == (OrderState.retry_scheduled, 0, 2)
        assert await w.invoice_posts() == Counter()

        # Two minutes later (the embedded limiter's clock moved on) with the company's budget
        # raised, as an operator does per connection: the run goes through, the invoice once.
        real_monotonic = time.monotonic
        monkeypatch.setattr(ratelimit.time, "monotonic", lambda: real_monotonic() + 120.0)
        await set_erp_budget(w, 100_000)
        await make_due(w, oid)
        assert (await sweep(w.res)).retries_started == 1
        assert await w.run_queued() == 1
        await invoiced_once(w, oid)
        assert await w.invoice_posts() == Counter({f"ML{oid}": 1})
        order, _ = await order_and_runs(w, oid)
        assert order.attempts == 1
