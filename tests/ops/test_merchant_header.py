"""``X-Merchant-Id`` names the merchant a request acts for, on every /api/v1 operation about
merchants' objects: lists show that merchant's objects only, another merchant's objects
are not found, and a merchant the caller may not see (or that does not exist) is a 404.
The operations come from the app's OpenAPI document, so a new one is covered (or fails
here) without anyone remembering to add it. The caller is an admin, who sees both
merchants: only the header can keep B's objects out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conexapi.db import unit_of_work
from conexapi.models import AuditEntry, ReconciliationReport, SyncRun
from tests.ops.operations import SELF, admin_only, request_body
from tests.ops.world import Tenant, World, all_items
from tests.support.auth import sessions_of

HEADER = "x-merchant-id"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every /api/v1 operation about merchants' objects (not the caller's own session, not
    the installation's users, keys and merchant records, which only admins manage)."""
    return [
        (method, path, operation)
        for path, ops in schema["paths"].items()
        if path.startswith("/api/v1/") and path not in SELF
        for method, operation in ops.items()
        if method in ("get", "post", "put", "patch", "delete") and not admin_only(method, path)
    ]


def _is_list(operation: dict[str, Any]) -> bool:
    """A paged list: its answer is a ``Page[...]`` (or a ``ReportPage``)."""
    return "Page" in str(operation["responses"].get("200", {}))


def _lists(schema: dict[str, Any]) -> list[str]:
    return [path for method, path, op in _operations(schema) if method == "get" and _is_list(op)]


def _owners(world: World) -> dict[str, Callable[[dict[str, Any]], int]]:
    """For each list: which merchant an item of it belongs to."""
    tenants = (world.a, world.b)
    by_pipeline = {t.pipeline_id: t.merchant_id for t in tenants}
    by_order = {o: t.merchant_id for t in tenants for o in t.orders.values()}
    by_seller = {t.seller: t.merchant_id for t in tenants}
    return {
        "/api/v1/merchants": lambda i: i["id"],
        "/api/v1/connections": lambda i: i["merchant_id"],
        "/api/v1/pipelines": lambda i: i["merchant_id"],
        "/api/v1/pipelines/{pipeline_id}/mappings": lambda i: by_pipeline[i["pipeline_id"]],
        "/api/v1/orders": lambda i: by_pipeline[i["pipeline_id"]],
        "/api/v1/runs": lambda i: by_order[i["order_sync_id"]],
        "/api/v1/webhook-events": lambda i: by_seller[i["external_account_id"]],
        "/api/v1/audit-log": lambda i: i["merchant_id"],
        "/api/v1/reports": lambda i: by_pipeline[i["pipeline_id"]],
    }


def _ids(t: Tenant) -> dict[str, int]:
    return {
        "merchant_id": t.merchant_id,
        "connection_id": t.ml_connection_id,
        "pipeline_id": t.pipeline_id,
        "order_id": t.orders["failed"],
        "run_id": t.runs["failed"],
        "event_id": t.event_id,
        "mapping_id": t.mapping_id,
        "report_id": 0,
    }


@pytest.fixture
async def schema(app_client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    """The document, with something of each merchant's in every list (a report, an audit
    entry) so that no check below passes on an empty list."""
    admin = world.headers("admin")
    async with unit_of_work(sessions_of(app_client)) as s:
        for t in (world.a, world.b):
            s.add(ReconciliationReport(pipeline_id=t.pipeline_id, day=date(2026, 11, 1)))
    for t in (world.a, world.b):
        retried = await app_client.post(f"/api/v1/orders/{t.orders['failed']}/retry", headers=admin)
        assert retried.status_code == 202, retried.text
    document: dict[str, Any] = (await app_client.get("/openapi.json")).json()
    return document


async def test_every_operation_about_merchants_objects_takes_the_header(
    schema: dict[str, Any],
) -> None:
    operations = _operations(schema)
    assert len(operations) >= 30
    missing = [
        (method, path)
        for method, path, operation in operations
        if HEADER not in {p["name"].lower() for p in operation.get("parameters", [])}
    ]
    assert not missing, missing


async def test_lists_show_only_the_merchant_named(
    app_client: httpx.AsyncClient, world: World, schema: dict[str, Any]
) -> None:
    owners = _owners(world)
    lists = _lists(schema)
    assert set(lists) == set(owners), "a list without an owner rule here: add one"
    admin = world.headers("admin")
    for path in lists:
        for tenant in (world.a, world.b):
            url = path.replace("{pipeline_id}", str(tenant.pipeline_id))
            headers = {**admin, "X-Merchant-Id": str(tenant.merchant_id)}
            items = await all_items(app_client, url, headers)
            assert items, (path, tenant.merchant_id)
            assert {owners[path](i) for i in items} == {tenant.merchant_id}, path
        if "{pipeline_id}" in path:
            continue
        unnamed = await app_client.get(path, headers=admin)
        if unnamed.status_code == 422:  # MerchantScope: a merchant must be named
            assert unnamed.json()["error"]["code"] == "merchant_required"
            continue
        # Without the header the admin sees both: the header is what kept B out.
        everything = {owners[path](i) for i in await all_items(app_client, path, admin)}
        assert everything == {world.a.merchant_id, world.b.merchant_id}, path


async def test_another_merchants_objects_are_not_found_when_one_is_named(
    app_client: httpx.AsyncClient, world: World, schema: dict[str, Any]
) -> None:
    a_named = {**world.headers("admin"), "X-Merchant-Id": str(world.a.merchant_id)}
    b_ids = _ids(world.b)
    async with sessions_of(app_client)() as s:
        b_report = await s.scalar(
            select(ReconciliationReport.id).where(
                ReconciliationReport.pipeline_id == world.b.pipeline_id
            )
        )
    b_ids["report_id"] = int(b_report or 0)
    async with sessions_of(app_client)() as s:
        runs_before = await s.scalar(select(func.count()).select_from(SyncRun))
    operations = [(m, p) for m, p, _ in _operations(schema) if "{" in p and "{connector}" not in p]
    assert len(operations) >= 20
    reads = 0
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: str(b_ids[m.group(1)]), path)
        response = await app_client.request(
            method.upper(), url, headers=a_named, **request_body(method, path)
        )
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
        if method == "get":
            # Not vacuous: naming B, the same read succeeds.
            named_b = {**a_named, "X-Merchant-Id": str(world.b.merchant_id)}
            assert (await app_client.get(url, headers=named_b)).status_code == 200, url
            reads += 1
    assert reads >= 7
    async with sessions_of(app_client)() as s:
        assert await s.scalar(select(func.count()).select_from(SyncRun)) == runs_before
        touched = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.merchant_id == world.b.merchant_id, AuditEntry.action != "order.retry"
            )
        )
    assert touched == 0


@pytest.mark.parametrize(
    ("who", "named", "status"),
    [
        ("operator_a", "b", 404),  # a merchant the caller may not see
        ("admin", "987654", 404),  # one that does not exist
        ("admin", "not-a-number", 422),
        ("admin", "0", 422),
    ],
)
async def test_a_merchant_that_cannot_be_acted_for_is_refused_on_every_list(
    app_client: httpx.AsyncClient,
    world: World,
    schema: dict[str, Any],
    who: str,
    named: str,
    status: int,
) -> None:
    header = str(world.b.merchant_id) if named == "b" else named
    for path in _lists(schema):
        url = path.replace("{pipeline_id}", str(world.a.pipeline_id))
        response = await app_client.get(
            url, headers={**world.headers(who), "X-Merchant-Id": header}
        )
        assert response.status_code == status, (path, response.text)
        assert response.json()["status"] == "error"


async def test_a_bulk_request_acts_for_the_merchant_named_and_its_key_remembers_which(
    app_client: httpx.AsyncClient, world: World, schema: dict[str, Any]
) -> None:
    admin = {**world.headers("admin"), "Idempotency-Key": "named-bulk-0001"}
    body = {"filter": {"order_ids": [world.a.orders["failed2"], world.b.orders["failed2"]]}}
    for_a = await app_client.post(
        "/api/v1/orders/retry",
        json=body,
        headers={**admin, "X-Merchant-Id": str(world.a.merchant_id)},
    )
    assert for_a.status_code == 202, for_a.text
    assert [r["order"]["id"] for r in for_a.json()["retried"]] == [world.a.orders["failed2"]]
    # The same key and body for another merchant is another request, never A's answer.
    for_b = await app_client.post(
        "/api/v1/orders/retry",
        json=body,
        headers={**admin, "X-Merchant-Id": str(world.b.merchant_id)},
    )
    assert for_b.status_code == 409
    assert for_b.json()["error"]["code"] == "idempotency_key_reused"
