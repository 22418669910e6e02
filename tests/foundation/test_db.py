"""Engines per backend and the unit of work that commits, rolls back, then sends jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker, in_unit_of_work, unit_of_work
from conexapi.kit import jobs
from conexapi.models import Merchant
from conexapi.settings import Settings


@pytest.fixture
async def sqlite_engine(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    migrated_db: Callable[[str], Awaitable[str]],
) -> AsyncIterator[AsyncEngine]:
    await migrated_db(sqlite_url)
    engine = create_engine(settings_factory(sqlite_busy_timeout_ms=4321))
    yield engine
    await engine.dispose()


async def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(
    sqlite_engine: AsyncEngine,
) -> None:
    async with sqlite_engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 4321
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.mariadb
async def test_mariadb_engine_settings(
    settings_factory: Callable[..., Settings], mariadb_url: str
) -> None:
    settings = settings_factory(database_url=mariadb_url)
    engine = create_engine(settings)
    try:
        assert engine.pool._pre_ping is False  # pinged only after a pause (next test)
        assert engine.pool._recycle == settings.db_pool_recycle
        async with engine.connect() as conn:
            wait_timeout = (await conn.exec_driver_sql("SELECT @@wait_timeout")).scalar()
            isolation = (await conn.exec_driver_sql("SELECT @@tx_isolation")).scalar()
            charset = (await conn.exec_driver_sql("SELECT @@character_set_client")).scalar()
        # Connections are recycled before the server drops them as idle.
        assert settings.db_pool_recycle < int(str(wait_timeout))
        assert isolation == "READ-COMMITTED"
        assert charset == "utf8mb4"
    finally:
        await engine.dispose()


@pytest.mark.mariadb
async def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(
    settings_factory: Callable[..., Settings], mariadb_url: str
) -> None:
    settings = settings_factory(database_url=mariadb_url, db_ping_idle_seconds=0.2)
    engine = create_engine(settings)
    killer = create_engine(settings, pool=False)
    try:
        async with engine.connect() as conn:
            first = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar()
        async with killer.connect() as conn:
            await conn.exec_driver_sql(f"KILL CONNECTION {int(str(first))}")
        await asyncio.sleep(0.3)  # idle for longer than the setting: pinged at checkout
        async with engine.connect() as conn:
            second = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar()
        assert second != first
        # In steady use no ping is sent: the pooled connection answers straight away.
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar() == second
    finally:
        await engine.dispose()
        await killer.dispose()


@pytest.mark.mariadb
async def test_a_connection_goes_back_to_the_pool_rolled_back_only_if_it_must(
    settings_factory: Callable[..., Settings], mariadb_url: str
) -> None:
    settings = settings_factory(database_url=mariadb_url, db_pool_size=1, db_max_overflow=0)
    engine = create_engine(settings)

    async def rollbacks(conn: Any) -> int:
        row = (await conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'")).one()
        return int(row[1])

    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (n INT) ENGINE=InnoDB")
        async with engine.connect() as conn:
            before = await rollbacks(conn)
            await conn.commit()
        async with engine.begin() as conn:  # the same pooled connection (pool of one)
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        async with engine.connect() as conn:
            # Two commits and two returns to the pool: no ROLLBACK was sent.
            assert await rollbacks(conn) == before
            # A transaction opened behind SQLAlchemy's back is still open at the return...
            await conn.commit()
            raw = await conn.get_raw_connection()
            cursor = await raw.driver_connection.cursor()
            await cursor.execute("INSERT INTO t VALUES (2)")
            await cursor.close()
        # ... and the pool rolled it back: only the committed row is there.
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT n FROM t")).scalars().all() == [1]
            assert await rollbacks(conn) == before + 1
    finally:
        await engine.dispose()


class CheckingSender:
    """Records jobs, and whether their rows were already visible to another connection."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.sent: list[jobs.Job] = []
        self.visible: list[bool] = []

    async def send(self, batch: list[jobs.Job]) -> None:
        async with self.sessionmaker() as other:
            for job in batch:
                row = await other.get(Merchant, job.args[0])
                self.visible.append(row is not None)
        self.sent.extend(batch)


@pytest.fixture
def sender(sqlite_engine: AsyncEngine) -> Iterator[CheckingSender]:
    checking = CheckingSender(create_sessionmaker(sqlite_engine))
    jobs.set_sender(checking)
    yield checking
    jobs.set_sender(None)


async def test_commit_sends_the_job_after_the_row_is_committed(
    sqlite_engine: AsyncEngine, sender: CheckingSender
) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    async with unit_of_work(sessionmaker) as session:
        merchant = Merchant(name="Tienda", slug="tienda")
        session.add(merchant)
        await session.flush()
        jobs.enqueue("conexapi.test_job", merchant.id)
        assert sender.sent == []  # held until the commit
    assert sender.sent == [jobs.Job("conexapi.test_job", (merchant.id,), None)]
    assert sender.visible == [True]


async def test_rollback_drops_the_job(sqlite_engine: AsyncEngine, sender: CheckingSender) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    with pytest.raises(RuntimeError, match="nope"):
        async with unit_of_work(sessionmaker) as session:
            merchant = Merchant(name="Tienda", slug="tienda")
            session.add(merchant)
            await session.flush()
            jobs.enqueue("conexapi.test_job", merchant.id)
            raise RuntimeError("nope")
    assert sender.sent == []
    async with sessionmaker() as session:
        assert (await session.scalar(sa.select(sa.func.count()).select_from(Merchant))) == 0


async def test_each_unit_of_work_keeps_its_own_jobs(
    sqlite_engine: AsyncEngine, sender: CheckingSender
) -> None:
    """The buffer is per unit of work: an inner one that rolls back drops only its own
    jobs, and two running side by side send only what each queued, each after its commit."""
    sessionmaker = create_sessionmaker(sqlite_engine)
    async with unit_of_work(sessionmaker) as session:
        merchant = Merchant(name="Tienda", slug="tienda")
        session.add(merchant)
        await session.flush()
        jobs.enqueue("conexapi.outer", merchant.id)
        with pytest.raises(RuntimeError, match="inner"):
            async with unit_of_work(sessionmaker):
                jobs.enqueue("conexapi.inner", merchant.id)
                raise RuntimeError("inner")
        assert sender.sent == []
    assert [job.name for job in sender.sent] == ["conexapi.outer"]

    both = asyncio.Event()
    started = 0

    async def side(name: str) -> None:
        nonlocal started
        async with unit_of_work(sessionmaker):
            jobs.enqueue(name, merchant.id)
            started += 1
            if started == 2:
                both.set()
            await asyncio.wait_for(both.wait(), timeout=60)

    await asyncio.gather(side("conexapi.left"), side("conexapi.right"))
    assert sorted(job.name for job in sender.sent[1:]) == ["conexapi.left", "conexapi.right"]


def test_a_job_outside_a_unit_of_work_is_not_kept() -> None:
    """Nothing would send it; it must not wait in a buffer for the next unit of work."""
    jobs.enqueue("conexapi.stray", 1)
    with jobs.buffered() as queued:
        assert queued == []


async def test_failed_commit_drops_the_job(
    sqlite_engine: AsyncEngine, sender: CheckingSender
) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    async with unit_of_work(sessionmaker) as session:
        session.add(Merchant(name="First", slug="same"))
    with pytest.raises(sa.exc.IntegrityError):
        async with unit_of_work(sessionmaker) as session:
            session.add(Merchant(name="Second", slug="same"))  # unique slug: fails at commit
            jobs.enqueue("conexapi.test_job", 1)
    assert sender.sent == []


async def test_broker_failure_does_not_undo_the_commit(
    sqlite_engine: AsyncEngine,
) -> None:
    class Down:
        async def send(self, batch: list[jobs.Job]) -> None:
            raise ConnectionError("broker down")

    jobs.set_sender(Down())
    try:
        sessionmaker = create_sessionmaker(sqlite_engine)
        async with unit_of_work(sessionmaker) as session:
            session.add(Merchant(name="Tienda", slug="tienda"))
            jobs.enqueue("conexapi.test_job", 1)
    finally:
        jobs.set_sender(None)
    async with sessionmaker() as session:
        assert (await session.scalar(sa.select(sa.func.count()).select_from(Merchant))) == 1


def _lock_conflict(code: int) -> sa.exc.OperationalError:
    import pymysql

    return sa.exc.OperationalError("UPDATE", {}, pymysql.err.OperationalError(code, "lock"))


async def test_a_deadlock_victim_is_run_again_from_the_start(
    sqlite_engine: AsyncEngine, sender: CheckingSender
) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    calls = 0

    async def work(session: AsyncSession) -> int:
        nonlocal calls
        calls += 1
        merchant = Merchant(name="Tienda", slug="tienda")
        session.add(merchant)
        await session.flush()
        jobs.enqueue("conexapi.test_job", calls)
        if calls < 3:
            raise _lock_conflict(1213 if calls == 1 else 1205)
        return calls

    assert await in_unit_of_work(sessionmaker, work) == 3
    # The victims' rows were rolled back and their jobs dropped: only the last run counts.
    async with sessionmaker() as session:
        assert (await session.scalar(sa.select(sa.func.count()).select_from(Merchant))) == 1
    assert sender.sent == [jobs.Job("conexapi.test_job", (3,), None)]


async def test_lock_conflicts_give_up_after_the_attempts(sqlite_engine: AsyncEngine) -> None:
    calls = 0

    async def work(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        raise _lock_conflict(1213)

    with pytest.raises(sa.exc.OperationalError) as caught:
        await in_unit_of_work(create_sessionmaker(sqlite_engine), work, attempts=3)
    assert calls == 3
    assert caught.value.orig is not None and caught.value.orig.args[0] == 1213


async def test_other_errors_are_not_run_again(sqlite_engine: AsyncEngine) -> None:
    calls = 0

    async def work(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        raise _lock_conflict(2003)  # the server is gone: running again would not help

    with pytest.raises(sa.exc.OperationalError):
        await in_unit_of_work(create_sessionmaker(sqlite_engine), work)
    assert calls == 1
