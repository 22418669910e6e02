"""The reports under /api/v1: JSON and CSV with the totals first, pagination, tenancy."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from conexapi.connections.scope import Scope, merchant_scope
from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.tasks import BUILD_REPORT
from conexapi.models import Merchant
from conexapi.reconcile.metrics import collector
from conexapi.reconcile.report import build_report
from conexapi.reconcile.rules import sale_day
from conexapi.reconcile.service import reconcile_pipeline
from conexapi.sync.days import local_date
from connectors.colombia.zone import TIME_ZONE
from connectors.mercadolibre.mapping import map_order
from tests.support.jobs import RecordingSender
from tests.support.world import World, world


class Api:
    """The app on the world's database; ``as_merchant`` picks whose scope requests have.

    Authentication is another package's business: the scope dependency is overridden,
    the one callable the endpoints depend on for it.
    """

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    def as_merchant(self, merchant_id: int) -> httpx.AsyncClient:
        self.app.dependency_overrides[merchant_scope] = lambda: Scope(merchant_id)
        return self.client


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[World, Api, list[int]]]:
    from conexapi.app import create_app

    async with world(tmp_path, reconcile_lookback_seconds=3 * 86400) as w:
        ids = await w.generate(6, seed=8)
        await reconcile_pipeline(w.ctx, w.pipeline_id)
        await w.run_queued()
        first = {i["idempotency_key"][2:]: i for i in await w.invoices()}[ids[0]]
        await w.siigo.delete(f"/_sandbox/invoices/{first['invoice']['id']}")
        sold = [sale_day(map_order(await w.ml_order(i)), TIME_ZONE) for i in ids]
        days = sorted({d for d in sold if d is not None})
        if len(days) == 1:  # two reports at least, for the paging
            days.insert(0, days[0] - timedelta(days=1))
        report_ids = [await build_report(w.ctx, w.pipeline_id, d) for d in days]
        app = create_app(w.res.settings, send_jobs=False)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
            ) as client,
        ):
            yield w, Api(client, app), report_ids


async def test_a_report_in_json_has_totals_then_lines(
    setup: tuple[World, Api, list[int]],
) -> None:
    w, api, report_ids = setup
    client = api.as_merchant(w.merchant_id)
    bodies = [(await client.get(f"/api/v1/reports/{i}")).json() for i in report_ids]
    with_line = next(b for b in bodies if b["lines"])
    assert list(with_line)[:5] == ["id", "pipeline_id", "day", "generated_at", "totals"]
    assert list(with_line)[-1] == "lines"
    totals = with_line["totals"]
    assert totals["differences"] == 1 and totals["by_kind"] == {"missing_invoice": 1}
    assert Decimal(totals["difference"]) == Decimal(totals["gross_sales"]) - Decimal(
        totals["invoiced_total"]
    )
    assert Decimal(totals["difference"]) > 0  # the deleted invoice
    (line,) = with_line["lines"]
    assert line["kind"] == "missing_invoice" and line["invoices"] == []
    assert Decimal(line["expected_total"]) == Decimal(totals["difference"])


async def test_a_report_in_csv_starts_with_the_totals(
    setup: tuple[World, Api, list[int]],
) -> None:
    w, api, report_ids = setup
    client = api.as_merchant(w.merchant_id)
    for report_id in report_ids:
        resp = await client.get(f"/api/v1/reports/{report_id}.csv")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        assert "attachment" in resp.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(resp.text)))
        blank = rows.index([])
        head, table = rows[:blank], rows[blank + 1 :]
        assert head[0] == ["field", "value"]
        fields = dict(head[1:])
        body = (await client.get(f"/api/v1/reports/{report_id}")).json()
        assert fields["report_id"] == str(report_id)
        for name in ("orders_to_invoice", "gross_sales", "invoiced_total", "difference"):
            assert fields[name] == str(body["totals"][name])
        assert table[0][:2] == ["kind", "external_order_id"]
        assert [r[:2] for r in table[1:]] == [
            [line["kind"], line["external_order_id"]] for line in body["lines"]
        ]


async def test_reports_page_newest_first_by_cursor(setup: tuple[World, Api, list[int]]) -> None:
    w, api, report_ids = setup
    client = api.as_merchant(w.merchant_id)
    seen: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 1, "pipeline_id": w.pipeline_id}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/reports", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        assert all("totals" in item for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(report_ids, reverse=True)
    day = (await client.get(f"/api/v1/reports/{report_ids[0]}")).json()["day"]
    one = (await client.get("/api/v1/reports", params={"day_from": day, "day_to": day})).json()
    assert [i["id"] for i in one["items"]] == [report_ids[0]]


async def test_another_merchant_sees_none_of_it(setup: tuple[World, Api, list[int]]) -> None:
    w, api, report_ids = setup
    async with unit_of_work(w.res.sessionmaker) as s:
        other = Merchant(name="Otra", slug="otra")
        s.add(other)
        await s.flush()
        other_id = other.id
    client = api.as_merchant(other_id)
    assert (await client.get("/api/v1/reports")).json() == {"items": [], "next_cursor": None}
    for path in (
        f"/api/v1/reports/{report_ids[0]}",
        f"/api/v1/reports/{report_ids[0]}.csv",
        f"/api/v1/pipelines/{w.pipeline_id}/reconcile",
    ):
        resp = await client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "not_found"
    resp = await client.post(
        f"/api/v1/pipelines/{w.pipeline_id}/reports", json={"day": "2026-01-01"}
    )
    assert resp.status_code == 404


async def test_a_report_can_be_asked_for_and_is_built_by_a_job(
    setup: tuple[World, Api, list[int]],
) -> None:
    w, api, _ = setup
    client = api.as_merchant(w.merchant_id)
    sender = RecordingSender()
    jobs.set_sender(sender)
    try:
        today = local_date(datetime.now(UTC), TIME_ZONE)
        resp = await client.post(
            f"/api/v1/pipelines/{w.pipeline_id}/reports", json={"day": today.isoformat()}
        )
        assert resp.status_code == 202, resp.text
        assert resp.json() == {
            "pipeline_id": w.pipeline_id,
            "day": today.isoformat(),
            "status": "queued",
        }
        assert [(j.name, j.args) for j in sender.jobs] == [
            (BUILD_REPORT, (w.pipeline_id, today.toordinal()))
        ]
        ahead = (today + timedelta(days=1)).isoformat()
        resp = await client.post(f"/api/v1/pipelines/{w.pipeline_id}/reports", json={"day": ahead})
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "day_in_future"
    finally:
        jobs.set_sender(None)


async def test_the_reconcile_state_shows_how_orders_were_first_seen(
    setup: tuple[World, Api, list[int]],
) -> None:
    w, api, _ = setup
    body = (
        await api.as_merchant(w.merchant_id).get(f"/api/v1/pipelines/{w.pipeline_id}/reconcile")
    ).json()
    assert body["first_seen_24h"] == {"reconcile": 6}
    assert body["last_error"] is None and body["syncs_requested"] >= 0
    position = datetime.fromisoformat(body["position"])
    assert abs(position - datetime.now(UTC)) < timedelta(minutes=5)


async def test_the_api_serves_how_todays_sales_were_first_seen(
    setup: tuple[World, Api, list[int]],
) -> None:
    w, api, _ = setup
    today = local_date(datetime.now(UTC), TIME_ZONE)
    report_id = await build_report(w.ctx, w.pipeline_id, today)
    body = (await api.as_merchant(w.merchant_id).get(f"/api/v1/reports/{report_id}")).json()
    seen = body["totals"]["first_seen"]
    assert set(seen) <= {"reconcile"}  # every order of this world came by reconcile
    expected = f'conexapi_orders_first_seen_today{{pipeline_id="{w.pipeline_id}",via="reconcile"}}'
    await collector().refresh(w.res)  # what the API's own refresher does every minute
    metrics = (await api.client.get("/metrics")).text
    if seen:
        assert f"{expected} {float(seen['reconcile'])}" in metrics
    else:
        assert expected not in metrics
