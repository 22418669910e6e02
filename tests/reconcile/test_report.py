"""The daily report against the sandboxes: each kind of difference, order by order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from conexapi.db import unit_of_work
from conexapi.models import OrderSync, ReconciliationLine, ReconciliationReport
from conexapi.reconcile.report import build_report
from conexapi.reconcile.rules import sale_day
from conexapi.reconcile.service import reconcile_pipeline
from conexapi.sync.days import local_date
from conexapi.sync.mapping import paid_for_goods_and_shipping
from connectors.colombia.zone import TIME_ZONE
from connectors.mercadolibre.mapping import map_order
from tests.support.world import ACCESS_KEY, SIIGO_USER, World, world


async def siigo_post_invoice(w: World, body: dict[str, Any]) -> dict[str, Any]:
    """An invoice made in Siigo by someone else than the product (no idempotency key)."""
    auth = await w.siigo.post("/auth", json={"username": SIIGO_USER, "access_key": ACCESS_KEY})
    auth.raise_for_status()
    resp = await w.siigo.post(
        "/v1/invoices",
        json=body,
        headers={
            "Authorization": f"Bearer {auth.json()['access_token']}",
            "Partner-Id": "ManualEntry",
        },
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def report_lines(w: World, days: set[Any]) -> dict[Any, list[ReconciliationLine]]:
    out = {}
    for day in sorted(days):
        report_id = await build_report(w.ctx, w.pipeline_id, day)
        async with w.res.sessionmaker() as s:
            out[day] = list(
                await s.scalars(
                    select(ReconciliationLine).where(ReconciliationLine.report_id == report_id)
                )
            )
    return out


async def test_deleted_edited_duplicated_cancelled_and_foreign_invoices_each_show(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        ids = await w.generate(8, seed=17, shipping_rate=0.5)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        await w.run_queued()
        orders = await w.orders()
        assert {orders[i].state for i in ids} == {"invoiced"}
        deleted, edited, cancelled, twice = ids[:4]
        by_order = {inv["idempotency_key"][2:]: inv for inv in await w.invoices()}

        # Behind the product's back: one invoice deleted, one edited to another total, one
        # order cancelled after invoicing, one invoice made twice by hand, one invoice for
        # an order that does not exist, and one for a sale of the merchant's shop.
        (
            await w.siigo.delete(f"/_sandbox/invoices/{by_order[deleted]['invoice']['id']}")
        ).raise_for_status()
        (
            await w.siigo.patch(
                f"/_sandbox/invoices/{by_order[edited]['invoice']['id']}", json={"total": 1000}
            )
        ).raise_for_status()
        (
            await w.ml.patch(f"/_sandbox/orders/{cancelled}", json={"status": "cancelled"})
        ).raise_for_status()
        copy = await siigo_post_invoice(w, by_order[twice]["request_body"])
        ghost_body = {
            **by_order[ids[4]]["request_body"],
            "observations": "Venta mercadolibre orden 2999999999999999",
        }
        ghost = await siigo_post_invoice(w, ghost_body)
        shop = {**by_order[ids[5]]["request_body"], "observations": "Venta en tienda física"}
        await siigo_post_invoice(w, shop)

        sales = {i: map_order(await w.ml_order(i)) for i in ids}
        today = local_date(datetime.now(UTC), TIME_ZONE)
        days = {sale_day(o, TIME_ZONE) for o in sales.values()} | {today}
        lines = await report_lines(w, days)

        found = {
            (line.kind, line.external_order_id)
            for day_lines in lines.values()
            for line in day_lines
        }
        assert found == {
            ("missing_invoice", deleted),
            ("amount_mismatch", edited),
            ("cancelled_after_invoice", cancelled),
            ("duplicate_invoice", twice),
            ("invoice_without_order", "2999999999999999"),
        }
        every = {line.external_order_id: line for ls in lines.values() for line in ls}
        assert every[edited].invoiced_total == Decimal(1000)
        assert every[edited].expected_total == paid_for_goods_and_shipping(sales[edited])
        assert {i["id"] for i in every[twice].invoices} == {
            by_order[twice]["invoice"]["id"],
            copy["id"],
        }
        assert every["2999999999999999"].invoices[0]["id"] == ghost["id"]
        assert by_order[deleted]["invoice"]["name"] in every[deleted].detail
        # The day of each sale holds its line; the foreign invoice is on the day it is dated.
        for order_id in (deleted, edited, cancelled, twice):
            assert order_id in {
                ln.external_order_id for ln in lines[sale_day(sales[order_id], TIME_ZONE)]
            }
        assert "2999999999999999" in {ln.external_order_id for ln in lines[today]}

        async with w.res.sessionmaker() as s:
            reports = {r.day: r for r in await s.scalars(select(ReconciliationReport))}
        assert reports[today].other_invoices == 1
        assert sum(r.orders_to_invoice for r in reports.values()) == 7  # one cancelled
        gross = sum(
            (paid_for_goods_and_shipping(o) for i, o in sales.items() if i != cancelled),
            Decimal(0),
        )
        assert sum((r.gross_sales for r in reports.values()), Decimal(0)) == gross
        assert sum(r.cancelled_orders for r in reports.values()) == 1
        # Found for the orders to invoice: six the product made (one deleted), the copy.
        assert sum(r.invoices_found for r in reports.values()) == 7
        assert sum(r.differences for r in reports.values()) == 5
        assert {k for r in reports.values() for k in r.first_seen} == {"reconcile"}


async def test_rebuilding_a_day_replaces_its_report(tmp_path: Path) -> None:
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        ids = await w.generate(3, seed=4)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        day = sale_day(map_order(await w.ml_order(ids[0])), TIME_ZONE)
        assert day is not None
        first = await build_report(w.ctx, w.pipeline_id, day)
        # Not invoiced yet (the runs are still queued): every sale of the day is missing.
        async with w.res.sessionmaker() as s:
            report = await s.get(ReconciliationReport, first)
            assert report is not None and report.orders_to_invoice >= 1
            assert report.differences == report.orders_to_invoice
            assert report.by_kind == {"missing_invoice": report.orders_to_invoice}
        await w.run_queued()
        second = await build_report(w.ctx, w.pipeline_id, day)
        assert second == first
        async with w.res.sessionmaker() as s:
            report = await s.get(ReconciliationReport, first, populate_existing=True)
            assert report is not None and report.differences == 0 and report.by_kind == {}
            assert report.invoices_found == report.orders_to_invoice
            count = await s.scalar(select(func.count()).select_from(ReconciliationLine))
            assert count == 0


async def _second_invoice_under_another_key(
    w: World, order_id: str, body: dict[str, Any], key: str
) -> dict[str, Any]:
    """What a forged notification for ``0<id>`` left behind before ids were canonical:
    a second invoice of the sale under another key, tied to an order row of its own."""
    auth = await w.siigo.post("/auth", json={"username": SIIGO_USER, "access_key": ACCESS_KEY})
    auth.raise_for_status()
    resp = await w.siigo.post(
        "/v1/invoices",
        json=body,
        headers={
            "Authorization": f"Bearer {auth.json()['access_token']}",
            "Partner-Id": "ConexAPI",
            "Idempotency-Key": key,
        },
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    async with unit_of_work(w.res.sessionmaker) as s:
        s.add(
            OrderSync(
                pipeline_id=w.pipeline_id,
                external_order_id=order_id,
                state="invoiced",
                idempotency_key=key,
                erp_document_id=created["id"],
                erp_document_name=created["name"],
            )
        )
    return created


async def test_two_erp_invoices_naming_one_order_are_a_duplicate_whatever_their_keys(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        [order_id] = await w.generate(1, seed=23)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        await w.run_queued()
        [first] = await w.invoices()
        assert first["idempotency_key"] == f"ML{order_id}"
        # The product's records know one invoice for the order (and one for "another").
        second = await _second_invoice_under_another_key(
            w, f"0{order_id}", first["request_body"], f"ML0{order_id}"
        )

        day = sale_day(map_order(await w.ml_order(order_id)), TIME_ZONE)
        lines = (await report_lines(w, {day}))[day]
        assert [(ln.kind, ln.external_order_id) for ln in lines] == [
            ("duplicate_invoice", order_id)
        ]
        assert {i["id"] for i in lines[0].invoices} == {first["invoice"]["id"], second["id"]}


async def test_an_invoice_tied_to_a_second_spelling_of_an_order_is_a_difference(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        [order_id] = await w.generate(1, seed=24)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        await w.run_queued()
        [first] = await w.invoices()
        # This time the second invoice names no order (its observations were edited): only
        # the product's record ties it, to "0<id>", which is no order of the marketplace.
        body = {**first["request_body"], "observations": "Venta"}
        second = await _second_invoice_under_another_key(w, f"0{order_id}", body, f"ML0{order_id}")

        today = local_date(datetime.now(UTC), TIME_ZONE)
        lines = (await report_lines(w, {today}))[today]
        assert ("invoice_without_order", f"0{order_id}") in {
            (ln.kind, ln.external_order_id) for ln in lines
        }
        [line] = [ln for ln in lines if ln.external_order_id == f"0{order_id}"]
        assert [i["id"] for i in line.invoices] == [second["id"]]
