"""Each ERP company's request budget, on MariaDB, Redis and real worker processes: a Siigo
test company (10 requests per window) flooded with orders is paced at its own budget, not
a production company's, so Siigo hardly ever refuses a call."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.support.stack import Stack, running_stack

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}
ORDERS = 36
#: Siigo's window, shortened for the sandbox and the product alike so the test takes
#: seconds: the test company's 10 requests per 3 s instead of per minute.
WINDOW = 3.0


async def test_a_flooded_test_company_is_paced_at_its_own_budget(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async def shrink_window(st: Stack) -> None:
        resp = await st.siigo.patch(
            "/_sandbox/config",
            json={
                "rate_limit": {
                    "enabled": True,
                    "window_seconds": WINDOW,
                    "production": 100,
                    "test": 10,
                }
            },
        )
        resp.raise_for_status()

    async with running_stack(
        tmp_path,
        mariadb_url,
        redis_url,
        orders=ORDERS,
        mix=PAID_ONLY,
        worker_count=2,  # two processes, two runs at a time each
        # The company is linked in test mode (``tests.support.seed.link_accounts``); the
        # product-wide default stays a production company's 100.
        siigo_mode="test",
        connectors={
            "siigo": {"rate_window_seconds": WINDOW},
            # Mercado Libre's own pace is not the subject here.
            "mercadolibre": {"requests_per_minute": 100_000},
        },
        before_seed=shrink_window,
    ) as st:
        assert st.setup is not None
        ids = st.setup.order_ids[:ORDERS]
        linked = (await st.api.get("/api/v1/connections", params={"connector": "siigo"})).json()
        assert [c["mode"] for c in linked["items"]] == ["test"]

        await asyncio.gather(*[st.notify(i) for i in ids])
        await st.wait_for(lambda rows: _all_invoiced(rows, ids), seconds=300)

        invoices = await st.invoices()
        assert Counter(str(i["idempotency_key"]) for i in invoices) == Counter(
            {f"ML{i}": 1 for i in ids}
        )
        # What Siigo received, refused calls included, not what it kept.
        received = (await st.siigo.get("/_sandbox/requests")).json()
        posts = [e for e in received if e["method"] == "POST" and e["path"] == "/v1/invoices"]
        assert len(posts) >= ORDERS
        refused = [e for e in received if e["status"] == 429]
        assert len(received) >= 2 * ORDERS
        assert len(refused) * 100 < len(received), (len(refused), len(received))


def _all_invoiced(rows: list[dict[str, object]], ids: list[str]) -> bool:
    seen = {r["external_order_id"]: r["state"] for r in rows}
    return all(seen.get(i) == "invoiced" for i in ids)
