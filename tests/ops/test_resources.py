"""Lists page with cursors under every sort; mappings import from CSV reporting every bad
row; pause and resume hold and restart orders."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.tasks import EXECUTE_RUN
from conexapi.models import OrderState, OrderSync, RunStatus, SyncRun
from tests.ops.world import World, all_items
from tests.support.auth import sessions_of


async def _more_orders(client: httpx.AsyncClient, pipeline_id: int, n: int) -> None:
    base = datetime(2026, 10, 1, tzinfo=UTC)
    async with unit_of_work(sessions_of(client)) as s:
        for i in range(n):
            s.add(
                OrderSync(
                    pipeline_id=pipeline_id,
                    external_order_id=f"extra-{i}",
                    state=OrderState.pending,
                    # Several share a timestamp: the id breaks the tie.
                    created_at=base + timedelta(minutes=i // 3),
                    updated_at=base,
                )
            )


@pytest.mark.parametrize("sort", ["id", "-id", "created_at", "-created_at", "-updated_at"])
async def test_cursor_pages_cover_every_order_once_in_order(
    app_client: httpx.AsyncClient, world: World, sort: str
) -> None:
    await _more_orders(app_client, world.a.pipeline_id, 11)
    items = await all_items(app_client, "/api/v1/orders", world.headers("admin"), sort=sort)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == 8 + 11
    key = sort.lstrip("-")
    pairs = [(i[key], i["id"]) for i in items]
    assert pairs == sorted(pairs, reverse=sort.startswith("-"))


async def test_filters_and_bad_cursors(app_client: httpx.AsyncClient, world: World) -> None:
    h = world.headers("admin")
    failed = await all_items(app_client, "/api/v1/orders", h, state="failed")
    assert {o["id"] for o in failed} == {
        world.a.orders["failed"],
        world.a.orders["failed2"],
        world.b.orders["failed"],
        world.b.orders["failed2"],
    }
    by_id = await all_items(app_client, "/api/v1/orders", h, external_order_id="bravo-2")
    assert [o["id"] for o in by_id] == [world.b.orders["invoiced"]]
    runs = await all_items(
        app_client, "/api/v1/runs", h, status="failed", connection_id=world.a.siigo_connection_id
    )
    assert {r["id"] for r in runs} == {world.a.runs["failed"], world.a.runs["failed2"]}
    late = await all_items(app_client, "/api/v1/runs", h, created_from="2026-11-01T13:00:00+00:00")
    assert {r["order_sync_id"] for r in late} <= set(world.b.orders.values())
    naive = await app_client.get(
        "/api/v1/runs", params={"created_from": "2026-11-01T13:00"}, headers=h
    )
    assert naive.status_code == 422

    page = (await app_client.get("/api/v1/orders", params={"limit": 2}, headers=h)).json()
    other_sort = await app_client.get(
        "/api/v1/orders", params={"cursor": page["next_cursor"], "sort": "created_at"}, headers=h
    )
    assert other_sort.status_code == 400
    assert other_sort.json()["error"]["code"] == "invalid_cursor"
    junk = await app_client.get("/api/v1/orders", params={"cursor": "%%%not-base64"}, headers=h)
    assert junk.status_code == 400 and junk.json()["error"]["code"] == "invalid_cursor"


def _cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


async def test_crafted_cursors_are_400_on_every_list(
    app_client: httpx.AsyncClient, world: World
) -> None:
    """Every list with an opaque cursor, from the OpenAPI document: a cursor of the right
    shape whose value is not of the sort column's type is refused, never run (a 500)."""
    schema = (await app_client.get("/openapi.json")).json()
    lists = []
    for path, ops in schema["paths"].items():
        params = {p["name"]: p for p in ops.get("get", {}).get("parameters", [])}
        if (
            "cursor" in params
            and params["cursor"]["schema"].get("anyOf", [{}])[0].get("type") == "string"
        ):
            sort = params.get("sort", {}).get("schema", {})
            lists.append((path, sort.get("enum") or ["id", "-id"]))
    assert len(lists) >= 9, lists
    h = world.headers("admin")
    assert _cursor("-created_at", "abc", 5) == "WyItY3JlYXRlZF9hdCIsICJhYmMiLCA1XQ"
    for path, sorts in lists:
        url = path.replace("{pipeline_id}", str(world.a.pipeline_id))
        for sort in sorts:
            for value in ("abc", 5.5, True, {"t": "2026-11-01T12:00:00"}, {"t": "x"}, [1]):
                response = await app_client.get(
                    url, params={"sort": sort, "cursor": _cursor(sort, value, 5)}, headers=h
                )
                assert response.status_code == 400, (path, sort, value, response.text)
                assert response.json()["error"]["code"] == "invalid_cursor"
    # The audit's own example, as it was sent.
    response = await app_client.get(
        "/api/v1/orders",
        params={"sort": "-created_at", "cursor": "WyItY3JlYXRlZF9hdCIsImFiYyIsNV0"},
        headers=h,
    )
    assert response.status_code == 400
    assert "next_cursor" in response.json()["error"]["message"]


async def test_run_detail_has_what_ops_need(app_client: httpx.AsyncClient, world: World) -> None:
    detail = (
        await app_client.get(
            f"/api/v1/runs/{world.a.runs['failed']}", headers=world.headers("viewer_a")
        )
    ).json()
    assert detail["error_class"] == "permanent" and detail["error_code"] == "invalid_customer"
    assert detail["upstream_request_ids"] == ["req-alpha-0"]
    assert detail["correlation_id"] == "corr-alpha-0"
    assert detail["attempt"] == 1 and detail["merchant_id"] == world.a.merchant_id
    assert detail["order_state"] == "failed" and detail["external_order_id"] == "alpha-1"


async def test_csv_import_reports_every_bad_row_and_saves_nothing(
    app_client: httpx.AsyncClient, world: World
) -> None:
    h = world.headers("operator_a")
    url = f"/api/v1/pipelines/{world.a.pipeline_id}/mappings/import"
    bad = (
        "kind,source_value,target_value\n"
        "sku,GOOD-1,P-1\n"
        "colour,RED,R\n"  # unknown kind
        "sku,,P-2\n"  # empty source
        "sku,GOOD-1,P-3\n"  # repeats line 2
        "sku,TOO,MANY,COLUMNS\n"
    )
    response = await app_client.post(url, content=bad, headers=h)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "csv_invalid"
    assert [r["line"] for r in error["details"]["rows"]] == [3, 4, 5, 6]
    mappings = await all_items(app_client, f"/api/v1/pipelines/{world.a.pipeline_id}/mappings", h)
    assert [m["source_value"] for m in mappings] == ["SKU-1"]

    header_missing = await app_client.post(url, content="a,b\n1,2\n", headers=h)
    assert header_missing.status_code == 422
    not_text = await app_client.post(url, content=b"\xff\xfe\x00", headers=h)
    assert not_text.status_code == 422

    good = "kind,source_value,target_value\nsku,SKU-1,P-1\nsku,SKU-2,P-2\nid_type,CC,13\n"
    dry = await app_client.post(url, content=good, params={"dry_run": True}, headers=h)
    assert dry.json() == {"created": 2, "updated": 0, "unchanged": 1, "dry_run": True}
    assert (
        len(await all_items(app_client, f"/api/v1/pipelines/{world.a.pipeline_id}/mappings", h))
        == 1
    )
    done = await app_client.post(url, content=good, headers=h)
    assert done.json() == {"created": 2, "updated": 0, "unchanged": 1, "dry_run": False}
    mappings = await all_items(app_client, f"/api/v1/pipelines/{world.a.pipeline_id}/mappings", h)
    assert {(m["kind"], m["source_value"], m["target_value"]) for m in mappings} == {
        ("sku", "SKU-1", "P-1"),
        ("sku", "SKU-2", "P-2"),
        ("id_type", "CC", "13"),
    }


async def test_pause_and_resume_restart_the_orders_that_waited(
    app_client: httpx.AsyncClient, world: World, sent_jobs: list[jobs.Job]
) -> None:
    h = world.headers("operator_a")
    paused = await app_client.post(f"/api/v1/pipelines/{world.a.pipeline_id}/pause", headers=h)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # What a run does when it meets a paused pipeline: ends waiting, the order keeps its place.
    async with unit_of_work(sessions_of(app_client)) as s:
        order = OrderSync(pipeline_id=world.a.pipeline_id, external_order_id="held-1")
        s.add(order)
        await s.flush()
        s.add(
            SyncRun(
                order_sync_id=order.id,
                trigger="webhook",
                status=RunStatus.waiting,
                error_class="paused",
                upstream_request_ids=[],
            )
        )
        held = order.id
    resumed = await app_client.post(f"/api/v1/pipelines/{world.a.pipeline_id}/resume", headers=h)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    detail = (await app_client.get(f"/api/v1/orders/{held}", headers=h)).json()
    assert [(r["trigger"], r["status"]) for r in detail["runs"]] == [
        ("webhook", "waiting"),
        ("manual", "queued"),
    ]
    assert [j.args for j in sent_jobs if j.name == EXECUTE_RUN] == [(detail["runs"][1]["id"],)]

    conn = f"/api/v1/connections/{world.a.ml_connection_id}"
    assert (await app_client.post(f"{conn}/pause", headers=h)).json()["status"] == "paused"
    assert (await app_client.post(f"{conn}/resume", headers=h)).json()["status"] == "active"
    gone = await app_client.delete(conn, headers=h)
    assert gone.json()["status"] == "disconnected"
    again = await app_client.post(f"{conn}/resume", headers=h)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    stopped = (await app_client.get(f"/api/v1/pipelines/{world.a.pipeline_id}", headers=h)).json()
    assert stopped["status"] == "stopped"
    blocked = await app_client.post(f"/api/v1/pipelines/{world.a.pipeline_id}/resume", headers=h)
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "connection_unusable"


async def test_pipeline_settings_are_validated_and_audited(
    app_client: httpx.AsyncClient, world: World
) -> None:
    h = world.headers("operator_a")
    url = f"/api/v1/pipelines/{world.a.pipeline_id}"
    wrong = await app_client.patch(url, json={"settings": {"tax_percentage": "150"}}, headers=h)
    assert wrong.status_code == 422
    new = {
        "document_type_id": "1",
        "seller_id": "2",
        "payment_type_id": "3",
        "tax_id": "4",
        "send_stamp": True,
    }
    ok = await app_client.patch(url, json={"settings": new, "name": "Renamed"}, headers=h)
    assert ok.status_code == 200
    assert ok.json()["settings"]["send_stamp"] is True and ok.json()["name"] == "Renamed"
    audit = await all_items(
        app_client,
        "/api/v1/audit-log",
        h,
        action="pipeline.update",
        target_id=str(world.a.pipeline_id),
    )
    assert len(audit) == 1
    assert audit[0]["details"]["name"] == {"from": "alpha pipeline", "to": "Renamed"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/pipelines"),
        ("POST", "/api/v1/orders/retry"),
        ("PUT", "/api/v1/pipelines/{pipeline_id}/mappings"),
        ("PATCH", "/api/v1/merchants/{merchant_id}"),
    ],
)
async def test_a_body_nested_100000_levels_deep_is_a_400(
    app_client: httpx.AsyncClient, world: World, method: str, path: str
) -> None:
    """FastAPI parses these bodies; a RecursionError in its parser must not be a 500."""
    url = path.format(pipeline_id=world.a.pipeline_id, merchant_id=world.a.merchant_id)
    response = await app_client.request(
        method,
        url,
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={
            **world.headers("admin"),
            "content-type": "application/json",
            "Idempotency-Key": "deep-body-0001",
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error" and response.json()["request_id"]


def test_pipeline_settings_are_held_to_the_target_erps_own_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request read with one ERP's model is read again with the target ERP's: what the
    target does not take is the request's 422, at the settings' own place."""
    from dataclasses import replace

    from fastapi.exceptions import RequestValidationError
    from pydantic import BaseModel, ConfigDict

    from conexapi.pipelines import service
    from connectors.registry import get_connector

    class OtherErpSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        journal: str
        invoice_on: str = "paid"
        max_retry_hours: float = 48

    other = replace(get_connector("siigo"), name="other", pipeline_settings=OtherErpSettings)
    monkeypatch.setattr(
        service, "get_connector", lambda name: other if name == "other" else get_connector(name)
    )
    first_erp = get_connector("siigo").pipeline_settings
    assert first_erp is not None
    sent = first_erp.model_validate(
        {"document_type_id": "1", "seller_id": "2", "payment_type_id": "3", "tax_id": "4"}
    )
    # The ERP whose model read it takes it as it is.
    assert service.target_settings("siigo", sent)["document_type_id"] == "1"
    with pytest.raises(RequestValidationError) as refused:
        service.target_settings("other", sent)
    locs = {tuple(e["loc"]) for e in refused.value.errors()}
    assert ("body", "settings", "journal") in locs
    assert ("body", "settings", "document_type_id") in locs
    taken = service.target_settings("other", OtherErpSettings(journal="J1"))
    assert taken == {"journal": "J1", "invoice_on": "paid", "max_retry_hours": 48.0}
