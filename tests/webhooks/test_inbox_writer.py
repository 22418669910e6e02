"""The inbox writer on both databases: group commits, and one bad notification in a batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from conexapi.db import create_engine, create_sessionmaker
from conexapi.kit.jsondepth import MAX_DEPTH
from conexapi.models import WebhookEvent
from conexapi.settings import Settings
from conexapi.webhooks.inbox import InboxItem, InboxWriter
from tests.support.webhooks import link_seller

#: Quotes, backslashes, a NUL, non-ASCII and an attempt at closing the statement.
NASTY = "it's \\ \"quoted\" \x00 ñandú 🎉 '); DROP TABLE webhook_events; -- %s {}"


def item(n: int, *, payload: str | None = None, key: str | None = None) -> InboxItem:
    body = {"_id": f"e{n}", "resource": f"/orders/{n}", "user_id": 1, "topic": "orders_v2"}
    return InboxItem(
        connector="mercadolibre",
        dedupe_key=key or f"id:e{n}",
        topic="orders_v2",
        resource=f"/orders/{n}",
        order_id=str(n),
        account_id="1",
        payload=payload or json.dumps(body, separators=(",", ":")),
        ignore_reason=None,
        correlation_id=f"req-{n}",
    )


def count_connects(writer: InboxWriter) -> Callable[[], int]:
    """Count the writer's connection attempts; returns a reader of the count."""
    count = 0
    connect = writer._connect

    async def counted() -> Any:
        nonlocal count
        count += 1
        return await connect()

    writer._connect = counted  # type: ignore[method-assign]
    return lambda: count


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
async def database(
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., Settings],
    migrated_db: Callable[[str], Awaitable[str]],
    sqlite_url: str,
) -> Settings:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("mariadb_url")
    await migrated_db(url)
    settings = settings_factory(database_url=url)
    await link_seller(settings, "1")
    return settings


async def test_a_batch_is_stored_as_sent_and_one_bad_item_fails_alone(database: Settings) -> None:
    engine = create_engine(database)
    writer = InboxWriter(engine, writers=1)
    writer.start()
    try:
        # Queued together, so they are written as one batch. One key is not text the
        # driver can encode: only its sender sees a failure. A payload MariaDB's JSON
        # check refuses (too deep) is kept as text; SQLite does not check.
        deep = "[" * 40 + "]" * 40
        bad = {3: item(3, payload=deep), 4: item(4, key="id:\ud800")}
        nasty = json.dumps({"note": NASTY, "resource": "/orders/5"}, ensure_ascii=False)
        bad[5] = item(5, payload=nasty, key=f"id:{NASTY}"[:190])
        tasks = [asyncio.ensure_future(writer.submit(bad.get(n) or item(n))) for n in range(7)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        again = await writer.submit(item(1))
    finally:
        await writer.stop()
    failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [4]
    assert again.duplicate is True
    async with create_sessionmaker(engine)() as session:
        keys = list(await session.scalars(select(WebhookEvent.dedupe_key)))
        first = await session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == "id:e0"))
        second = await session.scalar(
            select(WebhookEvent).where(WebhookEvent.dedupe_key == "id:e1")
        )
        deep_row = await session.scalar(
            select(WebhookEvent.payload).where(WebhookEvent.dedupe_key == "id:e3")
        )
        nasty_row = await session.scalar(
            select(WebhookEvent).where(WebhookEvent.dedupe_key == f"id:{NASTY}"[:190])
        )
    await engine.dispose()
    assert sorted(keys) == sorted(
        f"id:{NASTY}"[:190] if n == 5 else f"id:e{n}" for n in range(7) if n not in failed
    )
    assert first is not None and second is not None
    assert nasty_row is not None and nasty_row.payload == {"note": NASTY, "resource": "/orders/5"}
    assert first.payload == {
        "_id": "e0",
        "resource": "/orders/0",
        "user_id": 1,
        "topic": "orders_v2",
    }
    assert (first.duplicate_count, second.duplicate_count) == (0, 1)
    if database.database_url.startswith("mysql"):
        assert deep_row == {"raw": deep}
    assert first.received_at <= datetime.now(UTC).replace(tzinfo=first.received_at.tzinfo)


async def test_a_database_that_is_down_fails_the_batch_at_once(
    settings_factory: Callable[..., Settings],
) -> None:
    # Nothing listens on port 9: every sender gets the error, no one-by-one retries.
    engine = create_async_engine("mysql+aiomysql://root@127.0.0.1:9/none", pool_pre_ping=True)
    writer = InboxWriter(engine, writers=1)
    attempts = count_connects(writer)
    writer.start()
    try:
        tasks = [asyncio.ensure_future(writer.submit(item(n))) for n in range(5)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await writer.stop()
        await engine.dispose()
    assert all(isinstance(r, Exception) for r in results)
    assert attempts() == 1


async def test_a_body_the_json_column_refuses_is_kept_as_text(database: Settings) -> None:
    engine = create_engine(database)
    writer = InboxWriter(engine, writers=1)
    writer.start()
    deep = '{"a":' * 40 + "1" + "}" * 40
    try:
        tasks = [
            asyncio.ensure_future(writer.submit(item(n, payload=deep if n == 1 else None)))
            for n in range(3)
        ]
        results = await asyncio.gather(*tasks)
        alone = await writer.submit(item(9, payload=deep))
    finally:
        await writer.stop()
    assert [r.duplicate for r in results] == [False, False, False] and not alone.duplicate
    async with create_sessionmaker(engine)() as session:
        stored = dict(
            (await session.execute(select(WebhookEvent.dedupe_key, WebhookEvent.payload))).all()
        )
    await engine.dispose()
    assert sorted(stored) == ["id:e0", "id:e1", "id:e2", "id:e9"]
    # MariaDB's check stops at 32 levels: the body is kept whole, as a JSON string.
    expected = {"raw": deep} if database.database_url.startswith("mysql") else json.loads(deep)
    assert stored["id:e1"] == stored["id:e9"] == expected


async def test_a_body_as_deep_as_the_endpoint_takes_is_kept_as_json(database: Settings) -> None:
    """The endpoint refuses bodies nested deeper than MAX_DEPTH; up to that, the JSON
    column keeps them as JSON on both databases (MariaDB's check stops at 32 levels)."""
    deep = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    body = '{"_id":"deep","x":' + deep + "}"
    engine = create_engine(database)
    writer = InboxWriter(engine, writers=1)
    writer.start()
    try:
        await writer.submit(item(1, payload=body))
    finally:
        await writer.stop()
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(select(WebhookEvent.payload))
    await engine.dispose()
    assert stored == json.loads(body)


@pytest.mark.mariadb
async def test_a_lost_link_fails_the_batch_once_and_the_next_one_reconnects(
    settings_factory: Callable[..., Settings],
    migrated_db: Callable[[str], Awaitable[str]],
    mariadb_url: str,
) -> None:
    await migrated_db(mariadb_url)
    settings = settings_factory(database_url=mariadb_url)
    await link_seller(settings, "1")
    engine = create_engine(settings)
    killer = create_engine(settings, pool=False)
    writer = InboxWriter(engine, writers=1)
    attempts = count_connects(writer)
    writer.start()
    try:
        await writer.submit(item(0))
        # The server drops the writer's connection between two batches.
        async with killer.connect() as conn:
            ids = (
                await conn.exec_driver_sql(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).scalars()
            for thread in ids:
                await conn.exec_driver_sql(f"KILL CONNECTION {int(thread)}")
        tasks = [asyncio.ensure_future(writer.submit(item(n))) for n in (1, 2, 3)]
        lost = await asyncio.gather(*tasks, return_exceptions=True)
        again = await writer.submit(item(1))
    finally:
        await writer.stop()
        await engine.dispose()
        await killer.dispose()
    # The senders of the batch in flight get the error (a 503: they retry); the batch
    # is not written row by row over a dead link; the next batch reconnects once.
    assert all(isinstance(r, Exception) for r in lost)
    assert attempts() == 2
    assert again.duplicate is False
