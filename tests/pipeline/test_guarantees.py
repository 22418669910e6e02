"""The pipeline's guarantees, each shown on MariaDB, Redis and real worker processes.

Every test runs the product as production does: sandboxes and the API on localhost
ports, ``conexapi worker`` processes consuming Redis, MariaDB for state, and the sweeper
(production code) on a one-second tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conexapi.demo import APP_ID, SELLER_ID, UNMAPPED_SKU
from conexapi.serving import free_port
from tests.pipeline.harness import Stack, running_stack
from workers.celery_app import create_celery

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}
DONE = {"invoiced", "closed", "needs_mapping", "needs_attention", "failed"}


def by_key(invoices: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(inv.get("idempotency_key")) for inv in invoices)


def settled(ids: list[str], states: set[str] = DONE) -> Any:
    def check(rows: list[dict[str, Any]]) -> bool:
        seen = {r["external_order_id"]: r["state"] for r in rows}
        return all(seen.get(i) in states for i in ids)

    return check


def state_of(rows: list[dict[str, Any]], order_id: str) -> dict[str, Any]:
    return next(r for r in rows if r["external_order_id"] == order_id)


async def ml_order(stack: Stack, order_id: str) -> dict[str, Any]:
    resp = await stack.ml.get(f"/_sandbox/orders/{order_id}")
    resp.raise_for_status()
    order: dict[str, Any] = resp.json()["order"]
    return order


async def siigo_requests(stack: Stack, path: str, method: str = "POST") -> list[dict[str, Any]]:
    resp = await stack.siigo.get("/_sandbox/requests", params={"path": path, "method": method})
    resp.raise_for_status()
    out: list[dict[str, Any]] = resp.json()
    return out


async def test_same_notification_ten_times_concurrently_one_invoice(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=2, mix=PAID_ONLY, worker_count=2
    ) as st:
        assert st.setup is not None
        order_id = st.setup.order_ids[0]
        body = json.dumps(
            {
                "resource": f"/orders/{order_id}",
                "user_id": SELLER_ID,
                "topic": "orders_v2",
                "application_id": int(APP_ID),
                "attempts": 1,
                "sent": datetime.now(UTC).isoformat(),
                "received": datetime.now(UTC).isoformat(),
            }
        )
        answers = await asyncio.gather(
            *[
                st.api.post(
                    "/webhooks/mercadolibre",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                for _ in range(10)
            ]
        )
        assert [a.status_code for a in answers] == [200] * 10
        acks = [a.json() for a in answers]
        assert len({a["event_id"] for a in acks}) == 1
        assert sum(not a["duplicate"] for a in acks) == 1

        rows = await st.wait_for(settled([order_id], {"invoiced"}))
        await asyncio.sleep(1.5)  # anything late would show up now
        invoices = await st.invoices()
        assert by_key(invoices) == Counter({f"ML{order_id}": 1})
        assert state_of(rows, order_id)["erp_document_id"] == invoices[0]["invoice"]["id"]
        posts = await siigo_requests(st, "/v1/invoices")
        assert len(posts) == 1


async def test_two_workers_racing_the_same_orders_one_invoice_each(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=10, mix=PAID_ONLY, worker_count=2
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:10]
        # Three distinct notifications per order, all orders at once: ingest jobs for the
        # same order land on both workers.
        await asyncio.gather(*[st.notify(i, repeat=3) for i in ids])
        # And every run's job delivered twice more, as a broker redelivery would.
        celery = create_celery(st.settings)
        runs = (await st.api.get("/api/v1/runs", params={"limit": 500})).json()["items"]
        for run in runs:
            for _ in range(2):
                celery.send_task("conexapi.execute_run", args=[run["id"]])
        rows = await st.wait_for(settled(ids, {"invoiced"}), seconds=120)
        await asyncio.sleep(2)
        invoices = await st.invoices()
        assert by_key(invoices) == Counter({f"ML{i}": 1 for i in ids})
        assert {state_of(rows, i)["erp_document_id"] for i in ids} == {
            inv["invoice"]["id"] for inv in invoices
        }


async def test_siigo_times_out_after_creating_the_invoice_retry_gets_it_back(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=1, mix=PAID_ONLY, http_timeout_seconds=3.0
    ) as st:
        assert st.setup is not None
        order_id = st.setup.order_ids[0]
        await st.siigo.patch(
            "/_sandbox/config",
            json={
                "timeout_after_commit": [{"route": "POST /v1/invoices", "times": 1}],
                "hang_seconds": 20,
            },
        )
        await st.notify(order_id)
        rows = await st.wait_for(settled([order_id], {"invoiced"}), seconds=90)
        invoices = await st.invoices()
        assert by_key(invoices) == Counter({f"ML{order_id}": 1})
        posts = await siigo_requests(st, "/v1/invoices")
        assert len(posts) == 2
        assert {p["headers"]["idempotency-key"] for p in posts} == {f"ML{order_id}"}
        order = state_of(rows, order_id)
        assert order["erp_document_id"] == invoices[0]["invoice"]["id"]
        detail = (await st.api.get(f"/api/v1/orders/{order['id']}")).json()
        statuses = [r["status"] for r in detail["runs"]]
        assert statuses[0] == "retry_scheduled" and statuses[-1] == "succeeded"
        assert detail["runs"][0]["error_class"] == "transient"
        # Every call of the run left its upstream request id in the run's record.
        assert any(
            i.split(":")[0] == "127.0.0.1" for i in detail["runs"][-1]["upstream_request_ids"]
        )
        assert len(detail["runs"][-1]["upstream_request_ids"]) >= 3


async def test_worker_killed_mid_push_job_runs_again_elsewhere_one_invoice(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path,
        mariadb_url,
        redis_url,
        orders=1,
        mix=PAID_ONLY,
        worker_count=1,
        http_timeout_seconds=30.0,
        broker_visibility_timeout=8,
    ) as st:
        assert st.setup is not None and st.workers is not None
        order_id = st.setup.order_ids[0]
        # The invoice is written, and the answer never comes: the worker is mid-push.
        await st.siigo.patch(
            "/_sandbox/config",
            json={
                "timeout_after_commit": [{"route": "POST /v1/invoices", "times": 1}],
                "hang_seconds": 60,
            },
        )
        first = st.workers.procs[0]
        await st.notify(order_id)
        deadline = time.monotonic() + 60
        while not await st.invoices():
            assert time.monotonic() < deadline, st.workers.logs()
            await asyncio.sleep(0.2)
        rows = await st.orders()
        assert state_of(rows, order_id)["state"] == "in_progress"
        st.workers.kill(first)
        st.workers.start(1)

        rows = await st.wait_for(settled([order_id], {"invoiced"}), seconds=90)
        invoices = await st.invoices()
        assert by_key(invoices) == Counter({f"ML{order_id}": 1})
        assert state_of(rows, order_id)["erp_document_id"] == invoices[0]["invoice"]["id"]
        posts = await siigo_requests(st, "/v1/invoices")
        assert len(posts) >= 2  # the killed attempt and the one that finished


@contextlib.contextmanager
def private_redis(port: int) -> Any:
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                import redis as sync_redis

                sync_redis.Redis(port=port, socket_connect_timeout=0.5).ping()
                break
            except Exception:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_down_while_notifications_arrive_none_lost(
    tmp_path: Path, mariadb_url: str
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = private_redis(port)
    redis_proc.__enter__()
    try:
        async with running_stack(
            tmp_path, mariadb_url, url, orders=6, mix=PAID_ONLY, worker_count=1
        ) as st:
            assert st.setup is not None
            ids = st.setup.order_ids[:6]
            redis_proc.__exit__(None, None, None)  # Redis goes away
            results = await asyncio.gather(*[st.notify(i) for i in ids])
            deliveries = [n["deliveries"] for r in results for n in r["notifications"]]
            # Every notification accepted at its first delivery: 200 within 500 ms.
            assert [d[0]["status"] for d in deliveries] == [200] * len(ids)
            assert all(d[0]["accepted"] for d in deliveries)
            rows = await st.orders()
            assert rows == []  # nothing could be processed yet

            redis_proc = private_redis(port)  # Redis comes back
            redis_proc.__enter__()
            rows = await st.wait_for(settled(ids, {"invoiced"}), seconds=120)
            invoices = await st.invoices()
            assert by_key(invoices) == Counter({f"ML{i}": 1 for i in ids})
    finally:
        redis_proc.__exit__(None, None, None)


async def test_unknown_sku_parks_then_resumes_when_mapped(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(tmp_path, mariadb_url, redis_url, orders=1, mix=PAID_ONLY) as st:
        assert st.setup is not None
        odd = st.setup.order_ids[-1]
        await st.notify(odd)
        rows = await st.wait_for(settled([odd], {"needs_mapping"}))
        parked = state_of(rows, odd)
        assert UNMAPPED_SKU in parked["last_error_message"]
        assert await st.invoices() == []

        resp = await st.api.put(
            f"/api/v1/pipelines/{st.setup.pipeline_id}/mappings",
            json=[{"kind": "sku", "source_value": UNMAPPED_SKU, "target_value": UNMAPPED_SKU}],
        )
        assert resp.status_code == 200
        rows = await st.wait_for(settled([odd], {"invoiced"}))
        assert by_key(await st.invoices()) == Counter({f"ML{odd}": 1})
        detail = (await st.api.get(f"/api/v1/orders/{state_of(rows, odd)['id']}")).json()
        assert [r["trigger"] for r in detail["runs"]] == ["webhook", "mapping"]


async def test_siigo_at_its_rate_limit_every_order_invoiced_none_failed(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async def shrink_window(st: Stack) -> None:
        # Test-company mode: 10 requests per window; a 6 s window keeps the test short.
        await st.siigo.patch(
            "/_sandbox/config",
            json={
                "rate_limit": {
                    "enabled": True,
                    "window_seconds": 6.0,
                    "production": 100,
                    "test": 10,
                }
            },
        )

    async with running_stack(
        tmp_path,
        mariadb_url,
        redis_url,
        orders=6,
        mix=PAID_ONLY,
        worker_count=2,
        siigo_mode="test",
        siigo_requests_per_minute=10,
        siigo_rate_window_seconds=6.0,
        before_seed=shrink_window,
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:6]
        await asyncio.gather(*[st.notify(i) for i in ids])
        await st.wait_for(settled(ids, {"invoiced"}), seconds=180)
        assert by_key(await st.invoices()) == Counter({f"ML{i}": 1 for i in ids})
        failed = (await st.api.get("/api/v1/runs", params={"status": "failed"})).json()
        assert failed["items"] == []
        log = (await st.siigo.get("/_sandbox/requests")).json()
        assert [e for e in log if e["status"] == 429] == []


async def test_invoice_totals_equal_what_buyers_paid(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path,
        mariadb_url,
        redis_url,
        orders=16,
        seed_value=2024,
        mix={**PAID_ONLY, "shipping_rate": 0.5, "nit_rate": 0.4, "discount_rate": 0.5},
        worker_count=2,
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:16]
        await asyncio.gather(*[st.notify(i) for i in ids])
        await st.wait_for(settled(ids, {"invoiced"}), seconds=120)
        invoices = {inv["idempotency_key"]: inv for inv in await st.invoices()}
        shipped = 0
        for order_id in ids:
            order = await ml_order(st, order_id)
            goods = sum(
                Decimal(str(line["unit_price"])) * Decimal(str(line["quantity"]))
                for line in order["order_items"]
            )
            shipping = sum(
                Decimal(str(p.get("shipping_cost") or 0)) for p in order.get("payments", [])
            )
            shipped += shipping > 0
            invoice = invoices[f"ML{order_id}"]
            total = Decimal(str(invoice["invoice"]["total"]))
            paid = goods + shipping
            # What Siigo computed from our items is what the buyer paid, to the peso (one
            # cent short only where no choice of bases reaches it: see conexapi.sync.money).
            assert Decimal(0) <= paid - total <= Decimal("0.01"), (order_id, paid, total)
            assert total.quantize(Decimal(1)) == paid.quantize(Decimal(1))
            payments = sum(Decimal(str(p["value"])) for p in invoice["invoice"]["payments"])
            assert payments == total
        assert shipped > 0  # the sample did exercise the shipping line
