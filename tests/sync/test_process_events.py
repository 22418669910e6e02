"""A job's worker fills its free run slots with the events still waiting in the inbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conexapi.db import unit_of_work
from conexapi.models import EventStatus, OrderState, WebhookEvent
from conexapi.sync.batch import process_events
from tests.support.ids import SELLER_ID
from tests.support.world import World, world


async def _inbox(w: World, order_ids: list[str]) -> list[int]:
    async with unit_of_work(w.res.sessionmaker) as s:
        events = [
            WebhookEvent(
                connector="mercadolibre",
                dedupe_key=f"id:{oid}",
                topic="orders_v2",
                resource=f"/orders/{oid}",
                order_id=oid,
                external_account_id=str(SELLER_ID),
                status=EventStatus.queued,
                payload={"resource": f"/orders/{oid}"},
            )
            for oid in order_ids
        ]
        s.add_all(events)
        await s.flush()
        return [e.id for e in events]


async def _statuses(w: World) -> list[str]:
    async with w.res.sessionmaker() as s:
        return list(await s.scalars(select(WebhookEvent.status).order_by(WebhookEvent.id)))


async def test_a_job_takes_the_waiting_events_only_when_asked(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        order_ids = await w.generate(7, seed=11)
        event_ids = await _inbox(w, order_ids)

        # Its own event only: the others wait for their own jobs.
        await process_events(w.ctx, event_ids[:1], concurrency=3, take_more_for=0)
        assert await _statuses(w) == ["processed"] + ["queued"] * 6

        # Now with room for three runs at a time and time to take more: the job takes the
        # waiting events, oldest first, as slots free up, and returns when all are done.
        await process_events(w.ctx, event_ids[1:2], concurrency=3, take_more_for=60)
        assert await _statuses(w) == ["processed"] * 7
        orders = await w.orders()
        assert sorted(orders) == sorted(order_ids)
        assert {o.state for o in orders.values()} == {OrderState.invoiced}
        assert len(await w.invoices()) == 7
        assert await w.run_count() == 7


async def test_a_job_that_fails_to_ingest_hands_its_events_back_to_the_sweeper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conexapi.sync import batch

    async with world(tmp_path) as w:
        order_ids = await w.generate(2, seed=12)
        event_ids = await _inbox(w, order_ids)

        async def broken(*args: Any, **kwargs: Any) -> list[int]:
            raise RuntimeError("database trouble")

        monkeypatch.setattr(batch, "ingest_events", broken)
        with pytest.raises(RuntimeError):
            await process_events(w.ctx, event_ids, concurrency=3, take_more_for=0)
        # Back to "received": the sweeper's next pass sends them again (a "queued" one
        # would wait for the broker's visibility timeout).
        assert await _statuses(w) == ["received", "received"]
