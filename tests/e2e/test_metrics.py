"""Run counters reach Prometheus: from each ``conexapi worker``'s own ``/metrics`` in the
production shape (MariaDB, Redis, real worker processes), and from the API's ``/metrics``
on the embedded default, where the worker is a thread of the API process."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import Stack, running_stack

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}
SUCCEEDED = {"status": "succeeded", "error_class": ""}
WAIT_SECONDS = 90.0


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of one series in an exposition; 0 when it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


async def scrape(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, headers=headers)


async def succeeded_runs(stack: Stack) -> int:
    page = (await stack.api.get("/api/v1/runs", params={"status": "succeeded"})).json()
    return len(page["items"])


async def runs_counted(url: str, token: str | None, at_least: float) -> float:
    """Poll ``url`` until its succeeded-runs counter reaches ``at_least``; the last value."""
    deadline = time.monotonic() + WAIT_SECONDS
    seen: object = None
    while time.monotonic() < deadline:
        try:
            answer = await scrape(url, token)
        except httpx.TransportError as exc:  # nobody serves it (yet)
            seen = exc
        else:
            seen = answer.status_code
            if answer.status_code == 200:
                seen = sample(answer.text, "conexapi_sync_runs_total", SUCCEEDED)
                if seen >= at_least:
                    return seen
        await asyncio.sleep(0.3)
    raise AssertionError(f"{url}: succeeded runs counted {seen!r}, expected >= {at_least}")


@pytest.mark.mariadb
@pytest.mark.redis
@pytest.mark.slow
async def test_a_worker_process_serves_the_runs_it_finished(
    tmp_path: Path, mariadb_url: str, redis_url: str
) -> None:
    token = secrets.token_urlsafe(16)
    async with running_stack(
        tmp_path, mariadb_url, redis_url, orders=2, mix=PAID_ONLY, metrics_token=token
    ) as st:
        assert st.setup is not None and st.workers is not None
        (url,) = st.workers.metrics_urls.values()
        order_id = st.setup.order_ids[0]
        await st.notify(order_id)
        await st.wait_for(lambda rows: any(r["state"] == "invoiced" for r in rows))

        finished = await succeeded_runs(st)
        assert finished >= 1
        # Counted in a forked child, served by the worker's main process.
        assert await runs_counted(url, token, finished) == finished
        body = (await scrape(url, token)).text
        assert sample(body, "conexapi_sync_run_seconds_count", {}) >= finished

        # The token guards the worker's endpoint as it guards the API's.
        for refused in (await scrape(url), await scrape(url, "not-the-token")):
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert "conexapi_sync_runs_total" not in refused.text
            assert refused.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
async def test_embedded_worker_runs_show_on_the_api_metrics(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_stack(tmp_path, sqlite_url, None, orders=2, mix=PAID_ONLY) as st:
        assert st.setup is not None and st.workers is None
        url = f"{st.api_url}/metrics"
        # The test process may have counted runs of earlier tests: compare with before.
        before = sample((await scrape(url)).text, "conexapi_sync_runs_total", SUCCEEDED)
        await st.notify(st.setup.order_ids[0])
        await st.wait_for(lambda rows: any(r["state"] == "invoiced" for r in rows))
        assert await succeeded_runs(st) >= 1
        await runs_counted(url, None, before + 1)
