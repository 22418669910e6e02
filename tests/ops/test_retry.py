"""Retries: one order, one run, many by filter; safe to repeat; never a second invoice."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from conexapi.kit import jobs
from conexapi.kit.tasks import EXECUTE_RUN
from conexapi.models import RunStatus, SyncRun
from tests.ops.world import World
from tests.support.auth import sessions_of

MIX = ["failed", "invoiced", "in_progress"]


async def _queued(client: httpx.AsyncClient) -> dict[int, int]:
    """order id -> number of queued or running runs."""
    async with sessions_of(client)() as s:
        rows = await s.execute(
            select(SyncRun.order_sync_id, func.count())
            .where(SyncRun.status.in_([RunStatus.queued, RunStatus.running]))
            .group_by(SyncRun.order_sync_id)
        )
        return {order_id: n for order_id, n in rows.all()}


async def test_bulk_retry_retries_only_the_failed_once_and_repeats_change_nothing(
    app_client: httpx.AsyncClient, world: World, sent_jobs: list[jobs.Job]
) -> None:
    headers = {**world.headers("admin"), "Idempotency-Key": "bulk-retry-7f3a"}
    body = {"filter": {"state": MIX}}
    first = await app_client.post("/api/v1/orders/retry", json=body, headers=headers)
    assert first.status_code == 202, first.text
    result = first.json()
    failed = {t.orders[k] for t in (world.a, world.b) for k in ("failed", "failed2")}
    assert {r["order"]["id"] for r in result["retried"]} == failed
    assert all(r["run"]["trigger"] == "manual" for r in result["retried"])
    assert all(r["run"]["status"] == "queued" for r in result["retried"])
    skipped = {s["order_id"]: s["reason"] for s in result["skipped"]}
    for t in (world.a, world.b):
        assert skipped[t.orders["invoiced"]] == "already_invoiced"
        assert skipped[t.orders["running"]] == "run_active"
    assert result["truncated"] is False
    run_ids = sorted(r["run"]["id"] for r in result["retried"])
    sent = sorted(j.args[0] for j in sent_jobs if j.name == EXECUTE_RUN)
    assert sent == run_ids
    active = await _queued(app_client)
    assert all(active[o] == 1 for o in failed)
    for t in (world.a, world.b):
        assert active[t.orders["running"]] == 1  # still just the one that was running
        assert t.orders["invoiced"] not in active

    # The same request again: the first answer, nothing new queued or sent.
    again = await app_client.post("/api/v1/orders/retry", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json() == result
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _queued(app_client) == active
    assert sorted(j.args[0] for j in sent_jobs if j.name == EXECUTE_RUN) == run_ids

    # The same key for another request is refused, not replayed.
    other = await app_client.post(
        "/api/v1/orders/retry", json={"filter": {"state": ["failed"]}}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    # A new key while the retries are still queued: nothing is queued twice.
    fresh = await app_client.post(
        "/api/v1/orders/retry",
        json=body,
        headers={**headers, "Idempotency-Key": "bulk-retry-8b4c"},
    )
    assert fresh.status_code == 202 and fresh.json()["retried"] == []
    assert await _queued(app_client) == active


async def test_bulk_retry_needs_an_idempotency_key(
    app_client: httpx.AsyncClient, world: World
) -> None:
    response = await app_client.post(
        "/api/v1/orders/retry", json={"filter": {}}, headers=world.headers("admin")
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert await _queued(app_client) == {
        world.a.orders["running"]: 1,
        world.b.orders["running"]: 1,
    }


async def test_retrying_one_order(
    app_client: httpx.AsyncClient, world: World, sent_jobs: list[jobs.Job]
) -> None:
    h = world.headers("operator_a")
    invoiced = await app_client.post(
        f"/api/v1/orders/{world.a.orders['invoiced']}/retry", headers=h
    )
    assert invoiced.status_code == 409
    assert invoiced.json()["error"]["code"] == "already_invoiced"
    running = await app_client.post(f"/api/v1/orders/{world.a.orders['running']}/retry", headers=h)
    assert running.status_code == 409 and running.json()["error"]["code"] == "run_active"
    assert sent_jobs == []

    ok = await app_client.post(f"/api/v1/orders/{world.a.orders['failed']}/retry", headers=h)
    assert ok.status_code == 202, ok.text
    run = ok.json()["run"]
    assert run["trigger"] == "manual" and run["order_sync_id"] == world.a.orders["failed"]
    assert [j.args for j in sent_jobs] == [(run["id"],)]
    twice = await app_client.post(f"/api/v1/orders/{world.a.orders['failed']}/retry", headers=h)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "run_active"

    # Retrying through a run: the run's order.
    by_run = await app_client.post(f"/api/v1/runs/{world.a.runs['failed2']}/retry", headers=h)
    assert by_run.status_code == 202
    assert by_run.json()["order"]["id"] == world.a.orders["failed2"]
    invoiced_run = await app_client.post(
        f"/api/v1/runs/{world.a.runs['invoiced']}/retry", headers=h
    )
    assert invoiced_run.status_code == 409
    assert invoiced_run.json()["error"]["code"] == "already_invoiced"

    detail = (await app_client.get(f"/api/v1/orders/{world.a.orders['failed']}", headers=h)).json()
    assert [r["trigger"] for r in detail["runs"]] == ["webhook", "manual"]
    assert detail["erp_document"] is None
    invoiced_detail = (
        await app_client.get(f"/api/v1/orders/{world.a.orders['invoiced']}", headers=h)
    ).json()
    assert invoiced_detail["erp_document"]["name"] == "FV-1-1"


async def test_replaying_webhook_events(
    app_client: httpx.AsyncClient, world: World, sent_jobs: list[jobs.Job]
) -> None:
    from conexapi.kit.tasks import PROCESS_EVENT

    h = world.headers("operator_a")
    one = await app_client.post(f"/api/v1/webhook-events/{world.a.event_id}/replay", headers=h)
    assert one.status_code == 202 and one.json()["status"] == "queued"
    assert [(j.name, j.args) for j in sent_jobs] == [(PROCESS_EVENT, (world.a.event_id,))]
    listed = (
        await app_client.get("/api/v1/webhook-events", params={"status": "queued"}, headers=h)
    ).json()
    assert [e["id"] for e in listed["items"]] == [world.a.event_id]

    key = {**world.headers("admin"), "Idempotency-Key": "replay-all-01"}
    body = {"filter": {"topic": "orders_v2"}}
    bulk = await app_client.post("/api/v1/webhook-events/replay", json=body, headers=key)
    assert bulk.status_code == 202
    assert sorted(bulk.json()["replayed"]) == sorted([world.a.event_id, world.b.event_id])
    again = await app_client.post("/api/v1/webhook-events/replay", json=body, headers=key)
    assert again.json() == bulk.json() and again.headers["Idempotent-Replayed"] == "true"
    # The single replay, then one job per event of the bulk; the repeat sent nothing.
    assert sorted(j.args[0] for j in sent_jobs) == sorted(
        [world.a.event_id, world.a.event_id, world.b.event_id]
    )
