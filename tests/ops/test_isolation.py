"""Tenant isolation over every /api/v1 operation: merchant B's objects are 404 to A's callers,
and no list shows them. The operations come from the app's own OpenAPI document, so a new
endpoint is covered (or fails here) without anyone remembering to add it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conexapi.models import AuditEntry, SyncRun
from tests.ops.operations import ADMIN_ONLY, SELF, admin_only, request_body
from tests.ops.world import Tenant, World, all_items
from tests.support.auth import sessions_of


def _ids(t: Tenant) -> dict[str, int]:
    return {
        "merchant_id": t.merchant_id,
        "connection_id": t.ml_connection_id,
        "pipeline_id": t.pipeline_id,
        "order_id": t.orders["failed"],
        "run_id": t.runs["failed"],
        "event_id": t.event_id,
        "mapping_id": t.mapping_id,
    }


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, ops in schema["paths"].items()
        if path.startswith("/api/v1/") and path not in SELF
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def _runs(client: httpx.AsyncClient) -> int:
    async with sessions_of(client)() as s:
        return int(await s.scalar(select(func.count()).select_from(SyncRun)) or 0)


async def test_objects_of_another_merchant_are_not_found(
    app_client: httpx.AsyncClient, world: World
) -> None:
    schema = (await app_client.get("/openapi.json")).json()
    operations = [(m, p) for m, p in _operations(schema) if "{" in p]
    assert len(operations) >= 20
    b_ids = _ids(world.b)
    headers = {**world.headers("operator_a"), "X-Merchant-Id": str(world.a.merchant_id)}
    runs_before = await _runs(app_client)
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: str(b_ids.get(m.group(1), 987654)), path)
        sent = headers
        if "{connector}" in path:
            # Acts for the merchant named in X-Merchant-Id: name B's.
            url = path.replace("{connector}", "siigo" if method == "post" else "mercadolibre")
            sent = {**headers, "X-Merchant-Id": str(world.b.merchant_id)}
        response = await app_client.request(
            method.upper(), url, headers=sent, **request_body(method, path)
        )
        expected = 403 if admin_only(method, path) else 404
        assert response.status_code == expected, (method, path, response.text)
        assert response.json()["error"]["code"] == ("forbidden" if expected == 403 else "not_found")
    # Nothing of B's changed: no run was queued, no audit entry names B.
    assert await _runs(app_client) == runs_before
    async with sessions_of(app_client)() as s:
        touched = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.merchant_id == world.b.merchant_id)
        )
    assert touched == 0


async def test_the_owner_reaches_the_same_objects(
    app_client: httpx.AsyncClient, world: World
) -> None:
    """The matrix above is not vacuous: with B's own key the same reads succeed."""
    schema = (await app_client.get("/openapi.json")).json()
    b_ids = _ids(world.b)
    headers = {**world.headers("operator_b"), "X-Merchant-Id": str(world.b.merchant_id)}
    reads = [
        p
        for m, p in _operations(schema)
        if m == "get"
        and "{" in p
        and not admin_only(m, p)
        and "report" not in p
        and "{connector}" not in p
    ]
    assert len(reads) >= 7
    for path in reads:
        url = re.sub(r"\{(\w+)\}", lambda m: str(b_ids[m.group(1)]), path)
        response = await app_client.get(url, headers=headers)
        assert response.status_code == 200, (path, response.text)


LISTS = {
    "/api/v1/merchants": "id",
    "/api/v1/connections": "merchant_id",
    "/api/v1/pipelines": "merchant_id",
    "/api/v1/orders": "pipeline_id",
    "/api/v1/runs": "order_sync_id",
    "/api/v1/webhook-events": "external_account_id",
    "/api/v1/audit-log": "merchant_id",
}


@pytest.mark.parametrize("who", ["operator_a", "viewer_a"])
async def test_lists_never_show_another_merchants_objects(
    app_client: httpx.AsyncClient, world: World, who: str
) -> None:
    # Something of A's in the audit log too.
    await app_client.post(
        f"/api/v1/orders/{world.a.orders['failed']}/retry", headers=world.headers("operator_a")
    )
    a, b = world.a, world.b
    mine = {
        "id": {a.merchant_id},
        "merchant_id": {a.merchant_id},
        "pipeline_id": {a.pipeline_id},
        "order_sync_id": set(a.orders.values()),
        "external_account_id": {a.seller},
    }
    theirs_filter = {"merchant_id": b.merchant_id}
    for path, field in LISTS.items():
        items = await all_items(app_client, path, world.headers(who))
        assert items, path
        assert {item[field] for item in items} <= mine[field], path
        # Asking for B's objects by filter finds nothing either.
        if path != "/api/v1/merchants":
            assert await all_items(app_client, path, world.headers(who), **theirs_filter) == []
    # The admin sees both.
    orders = await all_items(app_client, "/api/v1/orders", world.headers("admin"))
    assert {o["pipeline_id"] for o in orders} == {a.pipeline_id, b.pipeline_id}


def test_every_list_is_checked(app: Any) -> None:
    schema = app.openapi()
    lists = {
        p
        for p, ops in schema["paths"].items()
        if (
            "get" in ops
            and "{" not in p
            and p.startswith("/api/v1/")
            and p not in SELF
            and not ADMIN_ONLY.match(p)
            and "next_cursor" in str(ops["get"]["responses"]["200"])
        )
        or (p in LISTS)
    }
    # Lists of other packages (e.g. reconciliation reports) scope through MerchantScope.
    unchecked = {p for p in lists if p not in LISTS and "report" not in p}
    assert not unchecked, unchecked


async def test_bulk_operations_only_reach_the_callers_merchants(
    app_client: httpx.AsyncClient, world: World
) -> None:
    headers = {**world.headers("operator_a"), "Idempotency-Key": "iso-bulk-0001"}
    retried = await app_client.post(
        "/api/v1/orders/retry",
        json={"filter": {"order_ids": [world.b.orders["failed"], world.b.orders["failed2"]]}},
        headers=headers,
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["retried"] == [] and retried.json()["skipped"] == []
    replayed = await app_client.post(
        "/api/v1/webhook-events/replay",
        json={"filter": {"event_ids": [world.b.event_id]}},
        headers={**headers, "Idempotency-Key": "iso-bulk-0002"},
    )
    assert replayed.status_code == 202 and replayed.json()["replayed"] == []
    created = await app_client.post(
        "/api/v1/pipelines",
        json={
            "merchant_id": world.b.merchant_id,
            "name": "sneaky",
            "source_connection_id": world.b.ml_connection_id,
            "target_connection_id": world.b.siigo_connection_id,
            "settings": {
                "document_type_id": "1",
                "seller_id": "1",
                "payment_type_id": "1",
                "tax_id": "1",
            },
        },
        headers=world.headers("operator_a"),
    )
    assert created.status_code == 404
    # A's own merchant cannot borrow B's connections either.
    borrowed = await app_client.post(
        "/api/v1/pipelines",
        json={
            "merchant_id": world.a.merchant_id,
            "name": "borrowed",
            "source_connection_id": world.b.ml_connection_id,
            "target_connection_id": world.a.siigo_connection_id,
            "settings": {
                "document_type_id": "1",
                "seller_id": "1",
                "payment_type_id": "1",
                "tax_id": "1",
            },
        },
        headers=world.headers("operator_a"),
    )
    assert borrowed.status_code == 404
    assert await _runs(app_client) == 8
