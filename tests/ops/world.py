"""A seeded database with two merchants, each with a full pipeline history, and callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from conexapi.db import unit_of_work
from conexapi.models import (
    Connection,
    EventStatus,
    Mapping,
    Merchant,
    OrderState,
    OrderSync,
    Pipeline,
    Role,
    RunStatus,
    SyncRun,
    WebhookEvent,
)
from tests.support.auth import Sessions, bearer, make_key

SETTINGS = {
    "document_type_id": "24446",
    "seller_id": "629",
    "payment_type_id": "5636",
    "tax_id": "13156",
}


@dataclass
class Tenant:
    merchant_id: int
    ml_connection_id: int
    siigo_connection_id: int
    pipeline_id: int
    mapping_id: int
    #: state -> order id
    orders: dict[str, int] = field(default_factory=dict)
    #: order state -> id of that order's last run
    runs: dict[str, int] = field(default_factory=dict)
    event_id: int = 0
    seller: str = ""


@dataclass
class World:
    a: Tenant
    b: Tenant
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return bearer(self.keys[who])


async def _tenant(sm: Sessions, slug: str, seller: str, base: datetime) -> Tenant:
    async with unit_of_work(sm) as s:
        merchant = Merchant(name=slug.title(), slug=slug)
        s.add(merchant)
        await s.flush()
        ml = Connection(
            merchant_id=merchant.id,
            connector="mercadolibre",
            external_account_id=seller,
            display_name=f"{slug}-ml",
            status="active",
            credentials="sealed",
            token_expires_at=base + timedelta(hours=6),
        )
        siigo = Connection(
            merchant_id=merchant.id,
            connector="siigo",
            external_account_id=f"{slug}@siigo.co",
            display_name=f"{slug}-siigo",
            status="active",
            credentials="sealed",
        )
        s.add_all([ml, siigo])
        await s.flush()
        pipeline = Pipeline(
            merchant_id=merchant.id,
            name=f"{slug} pipeline",
            source_connection_id=ml.id,
            target_connection_id=siigo.id,
            settings=dict(SETTINGS),
        )
        s.add(pipeline)
        await s.flush()
        mapping = Mapping(
            pipeline_id=pipeline.id, kind="sku", source_value="SKU-1", target_value="P-1"
        )
        s.add(mapping)
        event = WebhookEvent(
            connector="mercadolibre",
            dedupe_key=f"{slug}-evt-1",
            topic="orders_v2",
            resource="/orders/1",
            order_id=f"{slug}-1",
            external_account_id=seller,
            status=EventStatus.processed,
            payload={"resource": "/orders/1"},
            received_at=base,
        )
        s.add(event)
        await s.flush()
        tenant = Tenant(
            merchant.id, ml.id, siigo.id, pipeline.id, mapping.id, event_id=event.id, seller=seller
        )
        plan = [
            ("failed", OrderState.failed, RunStatus.failed, None),
            ("invoiced", OrderState.invoiced, RunStatus.succeeded, "FV-1-1"),
            ("running", OrderState.in_progress, RunStatus.running, None),
            ("failed2", OrderState.failed, RunStatus.failed, None),
        ]
        for n, (name, state, run_status, invoice) in enumerate(plan):
            order = OrderSync(
                pipeline_id=pipeline.id,
                external_order_id=f"{slug}-{n + 1}",
                state=state,
                attempts=1,
                order_total=Decimal("119000.00"),
                erp_document_id=f"doc-{slug}-{n}" if invoice else None,
                erp_document_name=invoice,
                erp_total=Decimal("119000.00") if invoice else None,
                idempotency_key=f"K{slug}{n}" if invoice else None,
                last_error_class="permanent" if run_status == RunStatus.failed else None,
                last_error_message="rejected" if run_status == RunStatus.failed else None,
            )
            s.add(order)
            await s.flush()
            run = SyncRun(
                order_sync_id=order.id,
                trigger="webhook",
                status=run_status,
                attempt=1,
                webhook_event_id=event.id,
                correlation_id=f"corr-{slug}-{n}",
                created_at=base + timedelta(minutes=n),
                started_at=base + timedelta(minutes=n),
                heartbeat_at=base + timedelta(minutes=n),
                finished_at=None if run_status == RunStatus.running else base,
                error_class="permanent" if run_status == RunStatus.failed else None,
                error_code="invalid_customer" if run_status == RunStatus.failed else None,
                upstream_request_ids=[f"req-{slug}-{n}"],
            )
            s.add(run)
            await s.flush()
            tenant.orders[name] = order.id
            tenant.runs[name] = run.id
        return tenant


async def seed_world(sm: Sessions) -> World:
    base = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    a = await _tenant(sm, "alpha", "1001", base)
    b = await _tenant(sm, "bravo", "2002", base + timedelta(hours=1))
    keys = {
        "admin": await make_key(sm, Role.admin, name="admin"),
        "operator_a": await make_key(sm, Role.operator, [a.merchant_id], name="op-a"),
        "viewer_a": await make_key(sm, Role.viewer, [a.merchant_id], name="viewer-a"),
        "operator_b": await make_key(sm, Role.operator, [b.merchant_id], name="op-b"),
    }
    return World(a, b, keys)


async def all_items(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: object
) -> list[dict[str, object]]:
    """Every item of a list, following cursors."""
    items: list[dict[str, object]] = []
    query: dict[str, object] = {"limit": 2, **params}
    while True:
        response = await client.get(path, params=query, headers=headers)  # type: ignore[arg-type]
        assert response.status_code == 200, (path, response.text)
        page = response.json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]
