"""One marketplace order is one order row and one ERP invoice, however its id is spelled.

Mercado Libre resolves ``/orders/0123`` to order 123, so a notification naming an order
with a leading zero fetches the real order: if the product took the spelling for a new
order, it would invoice the same sale a second time under another key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.ids import APP_ID, PAID_ONLY, SELLER_ID
from tests.support.stack import running_stack, settled

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]


def forged(resource: str) -> str:
    now = datetime.now(UTC).isoformat()
    body: dict[str, Any] = {
        "resource": resource,
        "user_id": SELLER_ID,
        "topic": "orders_v2",
        "application_id": int(APP_ID),
        "attempts": 1,
        "sent": now,
        "received": now,
    }
    return json.dumps(body)


async def test_forged_leading_zero_notification_makes_no_second_invoice(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=2, mix=PAID_ONLY, worker_count=1
    ) as st:
        assert st.setup is not None
        invoiced, sentinel = st.setup.order_ids[:2]
        await st.notify(invoiced)
        await st.wait_for(settled([invoiced], {"invoiced"}))
        posts = await st.invoice_posts()
        assert [p["headers"]["idempotency-key"] for p in posts] == [f"ML{invoiced}"]

        answer = await st.api.post(
            "/webhooks/mercadolibre",
            content=forged(f"/orders/0{invoiced}"),
            headers={"content-type": "application/json"},
        )
        # A genuine notification after the forged one: once its order is invoiced and
        # every order row has settled, whatever the forged one set going has finished too.
        await st.notify(sentinel)
        rows = await st.wait_for(
            lambda rs: (
                settled([sentinel], {"invoiced"})(rs)
                and all(r["state"] in {"invoiced", "needs_attention", "failed"} for r in rs)
            )
        )

        posts = await st.invoice_posts()
        assert sorted(p["headers"]["idempotency-key"] for p in posts) == sorted(
            [f"ML{invoiced}", f"ML{sentinel}"]
        )
        assert {r["external_order_id"] for r in rows} == {invoiced, sentinel}
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert error["status"] == "error"
        assert error["error"]["code"] == "invalid_notification"
        assert error["error"]["details"] == {"field": "resource"}
        assert "request_id" in error
