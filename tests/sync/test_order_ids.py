"""A run pushes a document only for the order it claimed, under that order's own key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conexapi.db import unit_of_work
from conexapi.models import EventStatus, OrderState, WebhookEvent
from conexapi.sync.batch import process_events
from connectors.models import Order
from tests.support.ids import SELLER_ID
from tests.support.world import World, world


async def _event(w: World, order_id: str, dedupe_key: str) -> int:
    async with unit_of_work(w.res.sessionmaker) as s:
        event = WebhookEvent(
            connector="mercadolibre",
            dedupe_key=dedupe_key,
            topic="orders_v2",
            resource=f"/orders/{order_id}",
            order_id=order_id,
            external_account_id=str(SELLER_ID),
            status=EventStatus.queued,
            payload={"resource": f"/orders/{order_id}"},
        )
        s.add(event)
        await s.flush()
        return event.id


async def _invoice_posts(w: World) -> list[dict[str, Any]]:
    """Every invoice creation the Siigo sandbox received, kept or not."""
    resp = await w.siigo.get(
        "/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"}
    )
    resp.raise_for_status()
    posts: list[dict[str, Any]] = resp.json()
    return posts


async def test_an_order_row_under_a_second_spelling_is_never_invoiced(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        [order_id] = await w.generate(1, seed=31)
        await process_events(w.ctx, [await _event(w, order_id, "first")], concurrency=1)
        orders = await w.orders()
        assert orders[order_id].state == OrderState.invoiced
        assert len(await _invoice_posts(w)) == 1

        # An event stored before ids were canonical ("/orders/0<id>" was taken then): its
        # row's order is the same sale, which the marketplace would gladly answer.
        forged = f"0{order_id}"
        await process_events(w.ctx, [await _event(w, forged, "forged")], concurrency=1)
        orders = await w.orders()
        assert orders[forged].state == OrderState.needs_attention
        assert orders[forged].last_error_code == "invalid_order_id"
        assert orders[forged].erp_document_id is None
        posts = await _invoice_posts(w)
        assert [p["headers"]["idempotency-key"] for p in posts] == [f"ML{order_id}"]


async def test_the_marketplace_answering_another_order_pushes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path) as w:
        asked, answered = await w.generate(2, seed=32)
        marketplace = w.ctx.integrations.marketplace("mercadolibre")
        fetch = marketplace.fetch_order

        async def wrong_order(access_token: str, order_id: str) -> Order:
            # A proxy or cache in the way answers the other order.
            return await fetch(access_token, answered if order_id == asked else order_id)

        monkeypatch.setattr(marketplace, "fetch_order", wrong_order)
        await process_events(w.ctx, [await _event(w, asked, "asked")], concurrency=1)
        order = (await w.orders())[asked]
        assert order.state == OrderState.needs_attention
        assert order.last_error_code == "order_id_mismatch"
        assert answered in (order.last_error_message or "")
        assert await _invoice_posts(w) == []

        # The same run with the marketplace answering right invoices the order: the check
        # above refused the wrong answer, not the order.
        monkeypatch.setattr(marketplace, "fetch_order", fetch)
        await process_events(w.ctx, [await _event(w, asked, "asked again")], concurrency=1)
        assert (await w.orders())[asked].state == OrderState.invoiced
        posts = await _invoice_posts(w)
        assert [p["headers"]["idempotency-key"] for p in posts] == [f"ML{asked}"]
