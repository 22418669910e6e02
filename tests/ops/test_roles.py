"""Role matrix: viewers only read; operators change their merchants' things but manage no
one; admins do everything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conexapi.models import AuditEntry, SyncRun
from tests.ops.world import World
from tests.support.auth import sessions_of

CSV = "kind,source_value,target_value\nsku,SKU-7,P-7\n"


def _writes(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    a = w.a
    return [
        ("POST", f"/api/v1/orders/{a.orders['failed']}/retry", {}),
        ("POST", f"/api/v1/runs/{a.runs['failed']}/retry", {}),
        (
            "POST",
            "/api/v1/orders/retry",
            {"json": {"filter": {}}, "headers": {"Idempotency-Key": "roles-0001"}},
        ),
        ("POST", f"/api/v1/webhook-events/{a.event_id}/replay", {}),
        (
            "POST",
            "/api/v1/webhook-events/replay",
            {"json": {"filter": {}}, "headers": {"Idempotency-Key": "roles-0002"}},
        ),
        ("POST", f"/api/v1/connections/{a.ml_connection_id}/pause", {}),
        ("POST", f"/api/v1/connections/{a.ml_connection_id}/resume", {}),
        ("POST", f"/api/v1/pipelines/{a.pipeline_id}/pause", {}),
        ("POST", f"/api/v1/pipelines/{a.pipeline_id}/resume", {}),
        ("PATCH", f"/api/v1/pipelines/{a.pipeline_id}", {"json": {"name": "edited"}}),
        (
            "PUT",
            f"/api/v1/pipelines/{a.pipeline_id}/mappings",
            {"json": [{"kind": "sku", "source_value": "SKU-8", "target_value": "P-8"}]},
        ),
        ("POST", f"/api/v1/pipelines/{a.pipeline_id}/mappings/import", {"content": CSV}),
        ("DELETE", f"/api/v1/pipelines/{a.pipeline_id}/mappings/{a.mapping_id}", {}),
        ("DELETE", f"/api/v1/connections/{a.siigo_connection_id}", {}),
    ]


def _admin_only(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", "/api/v1/users", {}),
        (
            "POST",
            "/api/v1/users",
            {
                "json": {
                    "email": "new@tienda.co",
                    "password": "a-long-password",
                    "role": "viewer",
                    "merchant_ids": [w.a.merchant_id],
                }
            },
        ),
        ("GET", "/api/v1/api-keys", {}),
        (
            "POST",
            "/api/v1/api-keys",
            {"json": {"name": "bot", "role": "viewer", "merchant_ids": [w.a.merchant_id]}},
        ),
        ("DELETE", "/api/v1/api-keys/1", {}),
        ("POST", "/api/v1/merchants", {"json": {"name": "Nueva", "slug": "nueva"}}),
        ("PATCH", f"/api/v1/merchants/{w.a.merchant_id}", {"json": {"name": "Otra"}}),
    ]


async def _call(
    client: httpx.AsyncClient, w: World, who: str, method: str, url: str, extra: dict[str, Any]
) -> httpx.Response:
    extra = dict(extra)
    headers = {**w.headers(who), **extra.pop("headers", {})}
    return await client.request(method, url, headers=headers, **extra)


async def _counts(client: httpx.AsyncClient) -> tuple[int, int]:
    async with sessions_of(client)() as s:
        runs = await s.scalar(select(func.count()).select_from(SyncRun))
        audit = await s.scalar(select(func.count()).select_from(AuditEntry))
        return int(runs or 0), int(audit or 0)


async def test_a_viewer_cannot_retry_pause_or_edit(
    app_client: httpx.AsyncClient, world: World
) -> None:
    before = await _counts(app_client)
    for method, url, extra in _writes(world) + _admin_only(world):
        response = await _call(app_client, world, "viewer_a", method, url, extra)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    assert await _counts(app_client) == before
    # It reads fine.
    assert (await app_client.get("/api/v1/orders", headers=world.headers("viewer_a"))).is_success


async def test_an_operator_changes_things_but_cannot_manage_users(
    app_client: httpx.AsyncClient, world: World
) -> None:
    for method, url, extra in _admin_only(world):
        response = await _call(app_client, world, "operator_a", method, url, extra)
        assert response.status_code == 403, (method, url, response.text)
    for method, url, extra in _writes(world):
        response = await _call(app_client, world, "operator_a", method, url, extra)
        assert response.status_code < 300 or response.json()["error"]["code"] in (
            "run_active",  # the first retry queued a run; the run retry finds it
        ), (method, url, response.text)
    audit = (await app_client.get("/api/v1/audit-log", headers=world.headers("admin"))).json()
    actions = {e["action"] for e in audit["items"]}
    assert {
        "order.retry",
        "connection.pause",
        "connection.resume",
        "pipeline.pause",
        "pipeline.resume",
        "pipeline.update",
        "mappings.put",
        "mapping.delete",
        "connection.disconnect",
        "webhook_event.replay",
    } <= actions
    entry = next(e for e in audit["items"] if e["action"] == "connection.pause")
    assert entry["actor_type"] == "api_key" and entry["actor_label"].startswith("cxk_")
    assert entry["merchant_id"] == world.a.merchant_id and entry["request_id"]
    assert entry["occurred_at"] and entry["ip"]


@pytest.mark.parametrize("index", range(7))
async def test_an_admin_manages_users_keys_and_merchants(
    app_client: httpx.AsyncClient, world: World, index: int
) -> None:
    method, url, extra = _admin_only(world)[index]
    response = await _call(app_client, world, "admin", method, url, extra)
    assert response.is_success, (method, url, response.text)
