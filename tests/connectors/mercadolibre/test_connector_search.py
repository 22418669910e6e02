"""Connector behaviour against respx: the order search."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from connectors.mercadolibre import MercadoLibreConnector
from connectors.mercadolibre.mapping import map_order
from tests.connectors.mercadolibre.fixtures import (
    API,
    TOKEN,
    mco_order,
)

# --- search --------------------------------------------------------------------------------


def _page(orders: list[dict[str, Any]], total: int, offset: int) -> dict[str, Any]:
    return {
        "results": orders,
        "paging": {"total": total, "offset": offset, "limit": 50},
        "sort": {"id": "date_asc"},
        "filters": [],
        "display": "complete",
    }


@respx.mock
async def test_search_pages_widens_to_hours_and_trims(connector: MercadoLibreConnector) -> None:
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    end = datetime(2026, 3, 2, 16, 10, tzinfo=UTC)
    inside = [
        mco_order(id=3000 + i, date_last_updated=f"2026-03-02T15:{i % 60:02d}:00.000Z")
        for i in range(60)
    ]
    # Before the window but in the same hour: Mercado Libre returns it, the connector drops it.
    early = mco_order(id=2999, date_last_updated="2026-03-02T14:05:00.000Z")
    cancelled = mco_order(id=4000, status="cancelled", date_last_updated="2026-03-02T16:00:00.000Z")
    everything = [early, *inside]
    calls: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append(params)
        offset, limit = int(params["offset"]), int(params["limit"])
        if params.get("order.status") == "cancelled":
            return httpx.Response(200, json=_page([cancelled][offset : offset + limit], 1, offset))
        chunk = everything[offset : offset + limit]
        return httpx.Response(200, json=_page(chunk, len(everything), offset))

    respx.get(f"{API}/orders/search").mock(side_effect=answer)
    found = [o async for o in connector.search_orders(TOKEN, "468424240", start, end)]
    assert [o.external_id for o in found] == [str(o["id"]) for o in inside] + ["4000"]
    assert all(o.buyer.complete is False for o in found)
    first = calls[0]
    assert first["seller"] == "468424240"
    assert first["order.date_last_updated.from"] == "2026-03-02T14:00:00.000-00:00"
    assert first["order.date_last_updated.to"] == "2026-03-02T17:00:00.000-00:00"
    assert first["limit"] == "50"
    assert [c["offset"] for c in calls] == ["0", "50", "0"]
    assert calls[-1]["order.status"] == "cancelled"


async def test_search_refuses_naive_times(connector: MercadoLibreConnector) -> None:
    with pytest.raises(ValueError):
        async for _ in connector.search_orders(
            TOKEN,
            "1",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
        ):
            pass


@respx.mock
async def test_search_does_not_yield_an_order_twice(connector: MercadoLibreConnector) -> None:
    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    end = start + timedelta(hours=3)
    one = mco_order(id=5000, date_last_updated="2026-03-02T15:00:00.000Z")
    # The same order on both passes (a search that does not hide cancelled orders).
    respx.get(f"{API}/orders/search").respond(json=_page([copy.deepcopy(one)], 1, 0))
    found = [o.external_id async for o in connector.search_orders(TOKEN, "1", start, end)]
    assert found == ["5000"]


def test_the_fraud_tag_becomes_the_canonical_fraud_flag() -> None:
    assert map_order(mco_order(tags=["paid", "fraud_risk_detected"])).fraud_suspected
    assert not map_order(mco_order(tags=["paid"])).fraud_suspected
