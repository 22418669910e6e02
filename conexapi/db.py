"""Async engines and the unit of work.

Only the unit of work commits: the request dependency (:func:`conexapi.deps.get_session`)
and :func:`unit_of_work` (tasks, the runner, the sweeper). Services and repositories
``flush()`` at most. Jobs queued with :func:`conexapi.kit.jobs.enqueue` during a unit of
work are sent only after its commit succeeds, and dropped on rollback.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

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
    kwargs.update(pool_recycle=settings.db_pool_recycle)
    if pool:
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    else:
        kwargs["poolclass"] = NullPool
    mysql = url.startswith(("mysql", "mariadb"))
    if mysql:
        # READ COMMITTED: fewer gap locks on the inbox's unique key under concurrent inserts.
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = {"charset": "utf8mb4", "connect_timeout": 10}
        kwargs["pool_reset_on_return"] = None  # see rollback_only_when_open
    engine = create_async_engine(url, **kwargs)
    if mysql:
        rollback_only_when_open(engine)
    if pool:
        ping_when_idle(engine, settings.db_ping_idle_seconds)
    return engine


def rollback_only_when_open(engine: AsyncEngine) -> None:
    """Reset a connection returned to the pool with a ROLLBACK only if it needs one.

    The pool's default reset sends ROLLBACK on every return, even right after a COMMIT:
    a round trip per transaction for nothing. MariaDB says in every OK packet whether a
    transaction is open (``SERVER_STATUS_IN_TRANS``); a connection returned with one
    open (an error between statements, a cancelled task) is still rolled back. This is
    SQLAlchemy's documented custom reset scheme (``pool_reset_on_return=None`` plus the
    ``reset`` event).
    """

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if state.terminate_only or state.transaction_was_reset or not state.asyncio_safe:
            return
        driver = getattr(dbapi_connection, "driver_connection", None)
        in_transaction = getattr(driver, "get_transaction_status", None)
        if in_transaction is not None and not in_transaction():
            return
        dbapi_connection.rollback()


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling, paid only after a pause.

    ``pool_pre_ping`` pings at every checkout: a round trip per transaction, which on a
    busy worker is a tenth of its statements. Here a connection is pinged only when it
    has been back in the pool for ``idle_seconds`` or more; one that fails the ping is
    replaced before anyone uses it (the pool's documented ``DisconnectionError`` retry).
    A connection that breaks while in use fails its statement and is invalidated with
    the rest of the pool, so only what was in flight at that moment fails (as it would
    with a ping): a request gets a 503, a run is taken over by the sweeper.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or back from use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


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
    transaction as a deadlock victim (concurrent requests on the same rows).

    After ``attempts`` runs the last conflict is raised as it came. Each wait is a few
    jittered hundredths of a second, longer after each attempt, so that the contenders
    do not collide again in step.
    """

    async def once() -> T:
        async with unit_of_work(sessionmaker) as session:
            return await work(session)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_lock_conflict),
        stop=stop_after_attempt(attempts),
        wait=_lock_conflict_wait,
        reraise=True,
    )
    result: T = await retrying(once)
    return result


def _lock_conflict_wait(state: RetryCallState) -> float:
    return random.uniform(0.01, 0.05) * state.attempt_number


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error; then send the jobs queued inside (none on a
    rollback: the buffer goes with the failed unit of work)."""
    with jobs.buffered() as queued:
        async with sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    await jobs.send_now(queued)
