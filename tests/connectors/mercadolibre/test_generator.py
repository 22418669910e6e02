"""The order generator: realistic Colombian orders, deterministic for a seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from connectors.mercadolibre.sandbox.catalogue import DEFAULT_CATALOGUE, iva_inclusive
from connectors.models import OrderStatus
from tests.connectors.mercadolibre.fixtures import SELLER_ID, MLEnv, ml_env

WINDOW = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}


@pytest.fixture
async def env() -> AsyncIterator[MLEnv]:
    async with ml_env() as env:
        yield env


async def generate(env: MLEnv, count: int, seed: int = 1, **mix: Any) -> list[dict[str, Any]]:
    response = await env.admin.post(
        "/_sandbox/orders/generate",
        json={"seller_id": SELLER_ID, "count": count, "seed": seed, "mix": mix, **WINDOW},
    )
    assert response.status_code == 201, response.text
    ids = response.json()["ids"]
    assert len(ids) == count == len(set(ids))
    return [(await env.admin.get(f"/_sandbox/orders/{i}")).json() for i in ids]


def D(value: Any) -> Decimal:
    return Decimal(str(value))


async def test_same_seed_same_orders_other_seed_other_orders() -> None:
    async with ml_env() as first, ml_env() as second:
        a = await generate(first, 25, seed=42)
        b = await generate(second, 25, seed=42)
        c = await generate(second, 25, seed=43)
    assert a == b
    assert [o["order"]["id"] for o in a] != [o["order"]["id"] for o in c]
    assert [o["billing_info"] for o in a] != [o["billing_info"] for o in c]


async def test_prices_include_iva_for_a_given_catalogue(env: MLEnv) -> None:
    skus = [
        {"sku": "A-19", "net_price": 100000},
        {"sku": "B-5", "net_price": 20000, "iva_rate": "0.05"},
        {"sku": "C-SHOWN", "price": 59900},
    ]
    orders = await generate(env, 60, skus=skus, discount_rate=0.0)
    expected = {"A-19": Decimal(119000), "B-5": Decimal(21000), "C-SHOWN": Decimal(59900)}
    seen = set()
    for stored in orders:
        for line in stored["order"]["order_items"]:
            sku = line["item"]["seller_sku"] or line["item"]["seller_custom_field"]
            seen.add(sku)
            assert D(line["unit_price"]) == D(line["full_unit_price"]) == expected[sku]
    assert seen == set(expected)


async def test_default_catalogue_prices_are_iva_inclusive_whole_pesos(env: MLEnv) -> None:
    shown = {item.sku: iva_inclusive(item.net_price, item.iva_rate) for item in DEFAULT_CATALOGUE}
    assert all(
        price > item.net_price
        for item, price in zip(DEFAULT_CATALOGUE, shown.values(), strict=True)
    )
    for stored in await generate(env, 40):
        for line in stored["order"]["order_items"]:
            sku = line["item"]["seller_sku"] or line["item"]["seller_custom_field"]
            assert D(line["full_unit_price"]) == shown[sku]
            assert D(line["unit_price"]) == D(line["unit_price"]).to_integral_value()


async def test_orders_are_consistent_and_varied(env: MLEnv) -> None:
    orders = await generate(
        env,
        200,
        cancelled_rate=0.15,
        shipping_rate=0.4,
        nit_rate=0.3,
        discount_rate=0.3,
        pack_rate=0.2,
        multi_quantity_rate=0.4,
    )
    statuses = Counter(o["order"]["status"] for o in orders)
    assert statuses["paid"] > 100 and statuses["cancelled"] > 10
    packs: dict[int, list[dict[str, Any]]] = {}
    discounted = multi = shipped = 0
    doc_types: Counter[str] = Counter()
    for stored in orders:
        order, billing = stored["order"], stored["billing_info"]
        lines = order["order_items"]
        total = sum(D(ln["unit_price"]) * ln["quantity"] for ln in lines)
        assert D(order["total_amount"]) == total
        assert order["currency_id"] == "COP" and order["context"]["site"] == "MCO"
        assert order["seller"]["id"] == SELLER_ID
        shipping = D(order["payments"][0]["shipping_cost"])
        shipped += shipping > 0
        if order["status"] == "paid":
            assert D(order["paid_amount"]) == total + shipping
            assert order["payments"][0]["status"] == "approved"
        discounted += any(D(ln["unit_price"]) < D(ln["full_unit_price"]) for ln in lines)
        multi += any(ln["quantity"] > 1 for ln in lines)
        info = billing["buyer"]["billing_info"]
        kind = info["identification"]["type"]
        doc_types[kind] += 1
        number = info["identification"]["number"]
        if kind == "NIT":
            assert info["attributes"]["cust_type"] == "BU"
            assert len(number) == 9 and info["last_name"] == ""
        else:
            assert kind == "CC" and info["attributes"]["cust_type"] == "CO"
            assert 8 <= len(number) <= 10 and info["last_name"]
        assert order["buyer"]["billing_info"]["id"]
        if order["pack_id"] is not None:
            packs.setdefault(order["pack_id"], []).append(order)
    assert discounted > 20 and multi > 20 and shipped > 20
    assert doc_types["NIT"] > 20 and doc_types["CC"] > 80
    assert packs and all(len(p) >= 2 for p in packs.values())
    for members in packs.values():
        assert len({m["buyer"]["id"] for m in members}) == 1


async def test_generated_orders_map_through_the_connector(env: MLEnv) -> None:
    orders = await generate(env, 30, nit_rate=0.5, cancelled_rate=0.0, pending_rate=0.0)
    tokens = await env.tokens()
    token = tokens.access_token.get_secret_value()
    kinds = set()
    for stored in orders:
        got = await env.connector.fetch_order(token, str(stored["order"]["id"]))
        assert got.status is OrderStatus.paid
        assert got.buyer.complete is True
        kinds.add((got.buyer.doc_type, got.buyer.person_type))
        assert got.total_amount == sum(ln.unit_price * ln.quantity for ln in got.lines)
        assert all(ln.sku for ln in got.lines)
    assert kinds == {("CC", "person"), ("NIT", "company")}


async def test_unmapped_skus_and_processing_billing(env: MLEnv) -> None:
    skus = ["SKU-1", "SKU-2"]
    orders = await generate(env, 20, skus=skus, unmapped_sku_rate=1.0, processing_rate=1.0)
    tokens = await env.tokens()
    for stored in orders:
        for line in stored["order"]["order_items"]:
            sku = line["item"]["seller_sku"] or line["item"]["seller_custom_field"]
            assert sku not in skus
        got = await env.connector.fetch_order(
            tokens.access_token.get_secret_value(), str(stored["order"]["id"])
        )
        assert got.buyer.complete is False


async def test_rejects_bad_input(env: MLEnv) -> None:
    bad_mix = await env.admin.post(
        "/_sandbox/orders/generate",
        json={"seller_id": SELLER_ID, "count": 1, "mix": {"no_such_knob": 1}},
    )
    assert bad_mix.status_code == 422
    backwards = await env.admin.post(
        "/_sandbox/orders/generate",
        json={"seller_id": SELLER_ID, "count": 1, "start": WINDOW["end"], "end": WINDOW["start"]},
    )
    assert backwards.status_code == 400
