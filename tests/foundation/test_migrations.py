"""One set of migrations on MariaDB and SQLite: up, down, no drift, and the guarantees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from conexapi.db import create_engine, create_sessionmaker
from conexapi.migrate import (
    alembic_config,
    current_revisions,
    downgrade,
    head_revisions,
    schema_drift,
    upgrade,
)
from conexapi.models import Base, Connection, Merchant, OrderSync, Pipeline, SyncRun
from conexapi.settings import Settings

pytestmark = pytest.mark.integration

BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def _upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)


async def _downgrade(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(downgrade, url, revision)


async def _tables(conn: AsyncConnection) -> set[str]:
    return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


def _metadata_copy() -> sa.MetaData:
    copy = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def test_revisions_form_one_line_from_0001() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert len(head_revisions()) == 1
    bases = script.get_bases()
    assert bases == ["0001"]
    chain = list(script.walk_revisions("base", "heads"))
    assert chain[-1].revision == "0001"


async def test_upgrade_downgrade_upgrade_without_drift(db_url: str, engine: AsyncEngine) -> None:
    await _upgrade(db_url)
    async with engine.connect() as conn:
        assert await conn.run_sync(current_revisions) == head_revisions()
        assert set(Base.metadata.tables) <= await _tables(conn)
        assert await conn.run_sync(schema_drift) == []

    await _downgrade(db_url)
    async with engine.connect() as conn:
        assert await conn.run_sync(current_revisions) == set()
        assert await _tables(conn) <= {"alembic_version"}

    await _upgrade(db_url)
    async with engine.connect() as conn:
        assert await conn.run_sync(schema_drift) == []


async def test_each_revision_steps_down_and_up(db_url: str, engine: AsyncEngine) -> None:
    """Every downgrade works from its own revision, not only from head to base at once."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    for revision in revisions:
        await _upgrade(db_url, revision)
    for revision in reversed(revisions):
        await _downgrade(db_url, "-1")
        async with engine.connect() as conn:
            current = await conn.run_sync(current_revisions)
        index = revisions.index(revision)
        assert current == ({revisions[index - 1]} if index else set())


async def _drift(engine: AsyncEngine, metadata: sa.MetaData) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(schema_drift, metadata)


def _ops(diffs: list[Any]) -> list[tuple[Any, ...]]:
    """Flatten Alembic's diff list (column changes come wrapped in lists)."""
    flat: list[tuple[Any, ...]] = []
    for item in diffs:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


async def test_drift_check_sees_an_added_column(db_url: str, engine: AsyncEngine) -> None:
    await _upgrade(db_url)
    metadata = _metadata_copy()
    metadata.tables["sync_runs"].append_column(sa.Column("surprise", sa.Integer, nullable=True))
    ops = _ops(await _drift(engine, metadata))
    assert [(op[0], op[2], op[3].name) for op in ops] == [("add_column", "sync_runs", "surprise")]


async def test_drift_check_sees_a_changed_type(db_url: str, engine: AsyncEngine) -> None:
    await _upgrade(db_url)
    metadata = _metadata_copy()
    metadata.tables["sync_runs"].c["trigger"].type = sa.String(21)
    metadata.tables["sync_runs"].c["upstream_request_ids"].type = sa.Text()
    ops = _ops(await _drift(engine, metadata))
    assert sorted((op[0], op[2], op[3]) for op in ops) == [
        ("modify_type", "sync_runs", "trigger"),
        ("modify_type", "sync_runs", "upstream_request_ids"),
    ]


async def test_drift_check_sees_a_changed_generated_column(
    db_url: str, engine: AsyncEngine
) -> None:
    await _upgrade(db_url)
    metadata = _metadata_copy()
    column = metadata.tables["sync_runs"].c["active_order_sync_id"]
    assert isinstance(column.computed, sa.Computed)
    column.computed.sqltext = sa.text(
        "CASE WHEN status IN ('queued') THEN order_sync_id ELSE NULL END"
    )
    ops = _ops(await _drift(engine, metadata))
    assert [(op[0], op[1], op[2]) for op in ops] == [
        ("modify_computed", "sync_runs", "active_order_sync_id")
    ]


@pytest.mark.mariadb
async def test_mariadb_json_and_fractional_seconds_are_compared(mariadb_url: str) -> None:
    """JSON counts as LONGTEXT only with its json_valid CHECK; DATETIME must keep fsp 6."""
    await _upgrade(mariadb_url)
    engine = create_async_engine(mariadb_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            column_types = await conn.run_sync(
                lambda c: {
                    col["name"]: col["type"] for col in sa.inspect(c).get_columns("sync_runs")
                }
            )
            # The trap itself: MariaDB reflects JSON as LONGTEXT and yet there is no drift.
            assert "LONGTEXT" in str(column_types["upstream_request_ids"]).upper()
            assert await conn.run_sync(schema_drift) == []
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "ALTER TABLE sync_runs MODIFY upstream_request_ids LONGTEXT NOT NULL"
            )
            await conn.exec_driver_sql("ALTER TABLE sync_runs MODIFY created_at DATETIME NOT NULL")
        async with engine.connect() as conn:
            ops = _ops(await conn.run_sync(schema_drift))
        assert sorted((op[0], op[2], op[3]) for op in ops) == [
            ("modify_type", "sync_runs", "created_at"),
            ("modify_type", "sync_runs", "upstream_request_ids"),
        ]
    finally:
        await engine.dispose()


async def test_at_most_one_active_run_per_order(
    db_url: str, settings_factory: Callable[..., Settings]
) -> None:
    await _upgrade(db_url)
    engine = create_engine(settings_factory(database_url=db_url), pool=False)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            merchant = Merchant(name="Tienda", slug="tienda")
            session.add(merchant)
            await session.flush()
            source = Connection(
                merchant_id=merchant.id, connector="mercadolibre", external_account_id="1"
            )
            target = Connection(merchant_id=merchant.id, connector="siigo", external_account_id="2")
            session.add_all([source, target])
            await session.flush()
            pipeline = Pipeline(
                merchant_id=merchant.id,
                name="ML to Siigo",
                source_connection_id=source.id,
                target_connection_id=target.id,
            )
            session.add(pipeline)
            await session.flush()
            order_a = OrderSync(pipeline_id=pipeline.id, external_order_id="2000001")
            order_b = OrderSync(pipeline_id=pipeline.id, external_order_id="2000002")
            session.add_all([order_a, order_b])
            await session.commit()
            a, b = order_a.id, order_b.id

        async def add_run(order_id: int, status: str) -> int:
            async with sessionmaker() as session:
                run = SyncRun(order_sync_id=order_id, trigger="webhook", status=status)
                session.add(run)
                await session.commit()
                return run.id

        async def set_status(run_id: int, status: str) -> None:
            async with sessionmaker() as session:
                await session.execute(
                    sa.update(SyncRun).where(SyncRun.id == run_id).values(status=status)
                )
                await session.commit()

        first = await add_run(a, "queued")
        for second_active in ("queued", "running"):
            with pytest.raises(IntegrityError):
                await add_run(a, second_active)
        await add_run(b, "queued")  # another order has its own active run

        await set_status(first, "running")
        with pytest.raises(IntegrityError):
            await add_run(a, "queued")

        await set_status(first, "succeeded")
        for finished in ("succeeded", "failed", "waiting", "retry_scheduled", "failed"):
            await add_run(a, finished)
        newer = await add_run(a, "queued")

        # Reviving an old run while another is active is refused as well.
        with pytest.raises(IntegrityError):
            await set_status(first, "running")

        async with sessionmaker() as session:
            rows = (
                await session.execute(
                    sa.select(SyncRun.id, SyncRun.active_order_sync_id)
                    .where(SyncRun.order_sync_id == a)
                    .order_by(SyncRun.id)
                )
            ).all()
        active = [(run_id, value) for run_id, value in rows if value is not None]
        assert active == [(newer, a)]
        assert len(rows) == 7
    finally:
        await engine.dispose()
