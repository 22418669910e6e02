"""Async engines and the unit of work.

Only the unit of work commits: the request dependency (:func:`get_session`) and the task
wrapper (:func:`unit_of_work`). Services and repositories ``flush()`` at most. Jobs queued
with :func:`conexapi.kit.jobs.enqueue` during a unit of work are sent only after its commit
succeeds, and dropped on rollback.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from conexapi.kit import jobs
from conexapi.settings import Settings


def create_engine(settings: Settings, *, pool: bool = True) -> AsyncEngine:
    url = settings.database_url
    kwargs: dict[str, Any] = {"echo": settings.db_echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        if not pool:
            kwargs["poolclass"] = NullPool
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    kwargs.update(pool_pre_ping=True, pool_recycle=settings.db_pool_recycle)
    if pool:
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    else:
        kwargs["poolclass"] = NullPool
    if url.startswith(("mysql", "mariadb")):
        # READ COMMITTED: fewer gap locks on the inbox's unique key under concurrent inserts.
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = {"charset": "utf8mb4"}
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every transaction.

    SQLite's deferred transactions fail with "database is locked" when two connections
    upgrade a read to a write at once; taking the write lock at BEGIN makes concurrent
    writers wait for the busy timeout instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # An AUTOCOMMIT connection (the inbox writer's) never commits: a BEGIN here would
        # hold the write lock for ever. SQLite runs each of its statements in its own
        # implicit transaction instead.
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


#: MariaDB's "deadlock found" and "lock wait timeout": the transaction was rolled back and
#: may simply be run again.
RETRYABLE_LOCK_ERRORS = frozenset({1213, 1205})

T = TypeVar("T")


def is_lock_conflict(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    return isinstance(exc, OperationalError) and code in RETRYABLE_LOCK_ERRORS


async def in_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    attempts: int = 4,
) -> T:
    """Run ``work`` in a unit of work, again from the start if the database chose this
    transaction as a deadlock victim (concurrent requests on the same rows)."""
    for attempt in range(1, attempts + 1):
        try:
            async with unit_of_work(sessionmaker) as session:
                result = await work(session)
            return result
        except OperationalError as exc:
            if attempt == attempts or not is_lock_conflict(exc):
                raise
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error; then send the jobs queued inside."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            jobs.discard(session)
            raise
    await jobs.flush(session)
