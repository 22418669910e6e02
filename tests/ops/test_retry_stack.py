"""Retries end to end (MariaDB, Redis, a worker process, the sandboxes): a bulk retry sent
three times at once with one key runs once, retries what failed, and no order ever gets a
second invoice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from conexapi.models import OrderState
from tests.support.ids import PAID_ONLY
from tests.support.stack import DONE, by_key, running_stack, settled

ALL_STATES = [s.value for s in OrderState]


async def test_bulk_retry_end_to_end_never_a_second_invoice(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(tmp_path, mariadb_url, redis_url, orders=4, mix=PAID_ONLY) as st:
        assert st.setup is not None
        ids = st.setup.order_ids
        # Siigo refuses the first two invoices: those orders stop short of an invoice.
        await st.siigo.patch(
            "/_sandbox/config",
            json={"fail_next": [{"route": "POST /v1/invoices", "status": 400, "times": 2}]},
        )
        for order_id in ids:
            await st.notify(order_id)
        rows = await st.wait_for(settled(ids, DONE), seconds=120)
        states = Counter(r["state"] for r in rows)
        stuck = {r["id"] for r in rows if r["state"] in ("failed", "needs_attention")}
        assert len(stuck) == 2, states
        invoiced_before = {r["id"] for r in rows if r["state"] == "invoiced"}
        assert invoiced_before
        runs_before = len((await st.api.get("/api/v1/runs", params={"limit": 500})).json()["items"])

        body = {"filter": {"state": ALL_STATES, "pipeline_id": st.setup.pipeline_id}}
        key = {"Idempotency-Key": "e2e-bulk-retry-0001"}
        a_invoiced = next(iter(invoiced_before))
        answers = await asyncio.gather(
            *[st.api.post("/api/v1/orders/retry", json=body, headers=key) for _ in range(3)],
            st.api.post(f"/api/v1/orders/{a_invoiced}/retry"),
        )
        *bulk, single = answers
        assert [a.status_code for a in bulk] == [202, 202, 202], [a.text for a in bulk]
        assert bulk[0].json() == bulk[1].json() == bulk[2].json()
        assert sorted(a.headers.get("Idempotent-Replayed", "") for a in bulk) == [
            "",
            "true",
            "true",
        ]
        assert single.status_code == 409 and single.json()["error"]["code"] == "already_invoiced"
        result: dict[str, Any] = bulk[0].json()
        retried = {r["order"]["id"] for r in result["retried"]}
        skipped = {s["order_id"]: s["reason"] for s in result["skipped"]}
        assert stuck <= retried
        assert all(skipped[i] == "already_invoiced" for i in invoiced_before)
        assert not retried & invoiced_before
        runs_after = (await st.api.get("/api/v1/runs", params={"limit": 500})).json()["items"]
        assert len(runs_after) == runs_before + len(retried)

        rows = await st.wait_for(
            lambda rs: all(r["state"] == "invoiced" for r in rs if r["id"] in stuck), seconds=120
        )
        invoiced = [r for r in rows if r["state"] == "invoiced"]
        assert by_key(await st.invoices()) == Counter(
            {f"ML{r['external_order_id']}": 1 for r in invoiced}
        )
        # What Siigo RECEIVED, not only what it kept: the orders invoiced before the retry
        # were never posted again; a retried one at most twice (the refused POST, the retry).
        await st.wait_quiet()
        posted = Counter(p["headers"].get("idempotency-key") for p in await st.invoice_posts())
        key_of = {r["id"]: f"ML{r['external_order_id']}" for r in rows}
        assert all(posted[key_of[i]] == 1 for i in invoiced_before), posted
        assert all(1 <= posted[key_of[i]] <= 2 for i in stuck), posted

        # The same request once more, later: the first answer, nothing new.
        async def run_count() -> int:
            page = (await st.api.get("/api/v1/runs", params={"limit": 500})).json()
            return len(page["items"])

        before = await run_count()
        again = await st.api.post("/api/v1/orders/retry", json=body, headers=key)
        assert again.json() == result and again.headers["Idempotent-Replayed"] == "true"
        assert await run_count() == before
        assert by_key(await st.invoices()) == Counter(
            {f"ML{r['external_order_id']}": 1 for r in invoiced}
        )
