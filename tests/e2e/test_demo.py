"""``make run`` is ``conexapi demo``: on the embedded default (SQLite, in-process queue, no
MariaDB or Redis) orders flow from the Mercado Libre sandbox to the Siigo sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conexapi import demo

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 8
#: The demo's last line: what the sandboxes saw (orders and their status in Mercado Libre,
#: the invoice requests Siigo received and the invoices it kept).
VERDICT = re.compile(
    r"(\d+) orders, (\d+) paid: (\d+) invoiced; Siigo received (\d+) invoice requests "
    r"and kept (\d+) invoices \(one per paid order: (yes|NO)\)"
)


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env["CONEXAPI_REDIS_URL"] = ""  # make sure nothing points at a real Redis
    return subprocess.run(
        [sys.executable, "-m", "conexapi.cli", "demo", "--exit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # the demo's own waits end well before this, loudly
        check=False,
    )


@pytest.mark.slow
def test_demo_invoices_every_paid_order_once_without_services(tmp_path: Path) -> None:
    proc = run_demo(tmp_path, "--orders", str(ORDERS))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    found = VERDICT.search(out)
    assert found, out
    orders, paid, invoiced, posts, kept = map(int, found.groups()[:5])
    # Every order the sandbox made (and the one with an unmapped SKU) is accounted for, some
    # were paid, and each paid order became one invoice from one request that Siigo received.
    assert orders == ORDERS + 1
    assert paid > 0
    assert (invoiced, posts, kept) == (paid, paid, paid), out
    assert found.group(6) == "yes"
    assert "needs_mapping" not in out.split("Mercado Libre orders → Siigo invoices")[-1]
    assert (tmp_path / "conexapi-demo.db").exists()


def fake(routes: dict[str, Any]) -> httpx.AsyncClient:
    """A client whose answers come from ``routes`` (path → JSON), as a sandbox's would."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=routes[request.url.path])

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://fake")


async def test_the_demo_fails_loudly_when_its_orders_do_not_settle() -> None:
    stuck = {"items": [{"id": 1, "state": "in_progress"}], "next_cursor": None}
    async with fake({"/api/v1/orders": stuck}) as api:
        with pytest.raises(demo.NotSettled) as raised:
            await demo.wait_settled(api, pipeline_id=1, expected=2, wait_seconds=0)
    assert "1/2 orders seen" in str(raised.value)
    assert raised.value.rows == stuck["items"]


@pytest.mark.parametrize(
    ("invoices", "posts", "verdict"),
    [(2, 2, True), (0, 0, False), (2, 3, False), (1, 2, False)],
)
async def test_the_demo_counts_what_siigo_received_against_the_paid_orders(
    invoices: int, posts: int, verdict: bool
) -> None:
    setup = demo.DemoSetup(1, 1, {"company": "c"}, ["1", "2", "3"])
    statuses = {"/_sandbox/orders/1": "paid", "/_sandbox/orders/2": "paid"}
    ml_routes: dict[str, Any] = {p: {"order": {"status": s}} for p, s in statuses.items()}
    ml_routes["/_sandbox/orders/3"] = {"order": {"status": "cancelled"}}
    rows = [{"state": "invoiced"}] * 2 + [{"state": "closed"}]
    siigo_routes = {
        "/_sandbox/invoices": [{"invoice": {}}] * invoices,
        "/_sandbox/requests": [{"method": "POST"}] * posts,
    }
    async with fake(ml_routes) as ml, fake(siigo_routes) as siigo:
        assert await demo.show_verdict(ml, siigo, setup, rows) is verdict
