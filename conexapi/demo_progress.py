"""The demo's view of its orders through the API: an API key to ask with, the orders of a
pipeline page by page, and the wait until they all settle. Nothing here names the pair the
demo wires (that stays in ``conexapi/demo.py``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from rich.console import Console

SETTLED = {
    "invoiced",
    "closed",
    "needs_mapping",
    "needs_attention",
    "failed",
    "cancelled_after_invoice",
    "waiting_payment",
    "needs_reauth",
}

console = Console(width=None if Console().is_terminal else 110)


async def orders_by_state(api: httpx.AsyncClient, pipeline_id: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"pipeline_id": pipeline_id, "sort": "id", "limit": 500}
    while True:
        response = await api.get("/api/v1/orders", params=params)
        response.raise_for_status()
        page = response.json()
        out += page["items"]
        if not page["next_cursor"]:
            return out
        params["cursor"] = page["next_cursor"]


async def demo_api_key(settings: Any, viewer_of: int | None = None) -> str:
    """An API key made in the database: admin for the demo's own calls (never printed),
    or a viewer of one merchant for the person trying the demo."""
    from conexapi.auth.service import bootstrap_api_key, create_api_key
    from conexapi.db import create_engine, create_sessionmaker, unit_of_work
    from conexapi.models.auth import Role

    engine = create_engine(settings, pool=False)
    try:
        if viewer_of is None:
            return await bootstrap_api_key(create_sessionmaker(engine), "demo")
        async with unit_of_work(create_sessionmaker(engine)) as session:
            _, key = await create_api_key(session, "demo-viewer", Role.viewer, [viewer_of])
            return key
    finally:
        await engine.dispose()


class NotSettled(Exception):
    """The orders did not all reach a settled state in time; ``rows`` is what there is."""

    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows


async def wait_settled(
    api: httpx.AsyncClient,
    pipeline_id: int,
    expected: int,
    wait_seconds: float,
    settled: set[str] = SETTLED,
) -> list[dict[str, Any]]:
    """The orders once all ``expected`` are seen in a ``settled`` state; NotSettled if that
    takes longer than ``wait_seconds`` (a demo that ran out of time did not show anything)."""
    deadline = time.monotonic() + wait_seconds
    last = ""
    while True:
        rows = await orders_by_state(api, pipeline_id)
        counts = Counter(r["state"] for r in rows)
        line = "  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        if line != last:
            console.print(f"[dim]{len(rows)}/{expected} seen[/dim]{line}")
            last = line
        if len(rows) >= expected and all(r["state"] in settled for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise NotSettled(
                f"after {wait_seconds:.0f} s, {len(rows)}/{expected} orders seen and not all "
                f"settled:{line}",
                rows,
            )
        await asyncio.sleep(0.5)
