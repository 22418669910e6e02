"""The webhook inbox: group commit of notifications, then enqueue.

Every notification is committed before its sender gets a 200, under
``UNIQUE(connector, dedupe_key)``. Requests arriving together are written in one
transaction (one multi-row INSERT, one commit): under load each commit carries many
events, which is what keeps the endpoint near the speed of a bare FastAPI handler. A
request waits only for the commit of its batch; the jobs are sent afterwards and the
events marked ``queued``. If sending fails (broker down) the events stay ``received`` and
the sweeper enqueues them later, so nothing accepted is lost.

The writer owns its transactions, as a task wrapper does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from conexapi.kit import jobs
from conexapi.kit.tasks import PROCESS_EVENT
from conexapi.models import Connection, ConnectionStatus, EventStatus, WebhookEvent, utcnow
from conexapi.webhooks.inbox_sql import (
    CONSTRAINT_FAILED,
    as_text,
    error_code,
    insert_mariadb,
    statement_refused,
)

log = structlog.get_logger(__name__)

EVENTS_T: Table = WebhookEvent.__table__  # type: ignore[assignment]
CONNECTIONS_T: Table = Connection.__table__  # type: ignore[assignment]
#: The same table for the inbox's INSERT, with the payload as text: the endpoint hands
#: over the body it received (checked to be strict JSON), stored as sent, not re-encoded.
RAW_EVENTS_T = Table(
    EVENTS_T.name,
    MetaData(),
    *(
        Column(c.name, Text() if c.name == "payload" else c.type, primary_key=c.primary_key)
        for c in EVENTS_T.columns
    ),
)
LINKED_TTL_SECONDS = 30.0
#: Events per job: few enough that the work spreads over the workers.
EVENTS_PER_JOB = 25
#: Payload characters a batch stops growing at (at most 8 MiB once encoded and escaped).
MAX_BATCH_CHARS = 1024 * 1024

EVENTS = Counter("conexapi_webhook_events_total", "Webhook notifications", ["connector", "outcome"])
BATCH = Histogram(
    "conexapi_inbox_batch_size", "Events per inbox commit", buckets=(1, 2, 5, 10, 25, 50, 100, 250)
)


@dataclass(frozen=True)
class InboxItem:
    connector: str
    dedupe_key: str
    topic: str
    resource: str
    order_id: str | None
    account_id: str
    #: The notification as JSON text (strict JSON: no NaN or Infinity).
    payload: str
    ignore_reason: str | None
    correlation_id: str | None


@dataclass(frozen=True)
class InboxResult:
    event_id: int
    duplicate: bool
    status: str


class InboxWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 250,
        writers: int = 2,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.writers = writers
        self._queue: asyncio.Queue[tuple[InboxItem, asyncio.Future[InboxResult]]] = asyncio.Queue()
        # Several writers, so a batch forms and commits while the one before it is still
        # waiting for the database.
        self._tasks: list[asyncio.Task[None]] = []
        # Accounts known to be linked; only positives are kept, so a seller linked a
        # moment ago is never taken for a stranger. An unlinked one is caught when its
        # event is processed (no active pipeline).
        self._linked: dict[tuple[str, str], float] = {}
        # Sending is decoupled from writing: a broker that is slow or down must never
        # hold up the commits that the senders of notifications are waiting for.
        self._outbox: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=f"inbox-writer-{n}")
                for n in range(self.writers)
            ]
            self._dispatcher = asyncio.create_task(self._dispatch(), name="inbox-dispatcher")

    async def stop(self) -> None:
        if self._tasks:
            # Let queued requests finish before closing; unsent jobs are the sweeper's.
            await self._queue.join()
            for task in [*self._tasks, self._dispatcher]:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._tasks = []
            self._dispatcher = None

    async def submit(self, item: InboxItem) -> InboxResult:
        if not self._tasks:
            raise RuntimeError("inbox writer is not running")
        fut: asyncio.Future[InboxResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        conn: AsyncConnection | None = None
        try:
            while True:
                first = await self._queue.get()
                batch = [first]
                size = len(first[0].payload)
                # Bounded in rows and in size: one statement must fit the server's
                # max_allowed_packet (16 MiB by default), and a character may take four
                # bytes, escaped two characters.
                while len(batch) < self.max_batch and size < MAX_BATCH_CHARS:
                    try:
                        batch.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                    size += len(batch[-1][0].payload)
                try:
                    conn = await self._write_batch(conn, batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _write_batch(
        self,
        conn: AsyncConnection | None,
        batch: list[tuple[InboxItem, asyncio.Future[InboxResult]]],
    ) -> AsyncConnection | None:
        """Commit ``batch``; the connection to keep using (None after a failure).

        A batch the database refuses while the connection stays good (one notification
        whose values it will not store) is written again one notification at a time, so
        only the sender of the bad one gets the 503. A database that is down fails them
        all at once: the senders retry.
        """
        connected = False
        try:
            if conn is None:
                conn = await self._connect()
            connected = True
            await self._flush(conn, batch)
            return conn
        except Exception as exc:
            log.error("inbox_write_failed", error=str(exc), batch=len(batch))
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            if len(batch) > 1 and connected and statement_refused(exc):
                conn = None
                for one in batch:
                    conn = await self._write_batch(conn, [one])
                return conn
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return None

    async def _connect(self) -> AsyncConnection:
        """A connection of the writer's own, in autocommit: each INSERT commits itself,
        so the common batch costs one round trip to the database."""
        conn = await self.engine.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def _flush(
        self,
        conn: AsyncConnection,
        batch: Sequence[tuple[InboxItem, asyncio.Future[InboxResult]]],
    ) -> None:
        BATCH.observe(len(batch))
        results, to_enqueue = await self._write(conn, [item for item, _ in batch])
        for (item, fut), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                EVENTS.labels(item.connector, "refused").inc()
                if not fut.done():
                    fut.set_exception(result)
                continue
            EVENTS.labels(item.connector, "duplicate" if result.duplicate else result.status).inc()
            if not fut.done():
                fut.set_result(result)
        for pending in to_enqueue:
            self._outbox.put_nowait(pending)

    async def _insert(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        """Insert the rows whose key is new; (connector, key) → (id, status) of those."""
        if conn.dialect.name in ("mysql", "mariadb"):
            try:
                return await insert_mariadb(conn, rows)
            except Exception as exc:
                # One row's payload failed the JSON check (a batch that fails it is
                # written again row by row): keep that body as text.
                if len(rows) != 1 or error_code(exc) != CONSTRAINT_FAILED:
                    raise
                log.warning("inbox_payload_kept_as_text", events=1)
                return await insert_mariadb(conn, [as_text(rows[0])])
        result = await conn.execute(
            self._insert_ignoring_duplicates(conn).returning(
                RAW_EVENTS_T.c.id,
                RAW_EVENTS_T.c.connector,
                RAW_EVENTS_T.c.dedupe_key,
                RAW_EVENTS_T.c.status,
            ),
            rows,
        )
        return {(r.connector, r.dedupe_key): (r.id, r.status) for r in result}

    def _insert_ignoring_duplicates(self, conn: AsyncConnection) -> Insert:
        if conn.dialect.name == "sqlite":
            return sqlite_insert(RAW_EVENTS_T).on_conflict_do_nothing()
        # MariaDB: IGNORE skips rows whose key exists (waiting for a concurrent insert of the
        # same key to commit first); RETURNING gives back only the rows inserted.
        return insert(RAW_EVENTS_T).prefix_with("IGNORE")

    async def _linked_accounts(
        self, conn: AsyncConnection, items: list[InboxItem]
    ) -> set[tuple[str, str]]:
        clock = time.monotonic()
        accounts = {(i.connector, i.account_id) for i in items if i.account_id}
        linked = {a for a in accounts if self._linked.get(a, 0.0) > clock}
        unknown = accounts - linked
        if unknown:
            conds = [
                and_(CONNECTIONS_T.c.connector == c, CONNECTIONS_T.c.external_account_id.in_(ids))
                for c, ids in _group(unknown).items()
            ]
            rows = await conn.execute(
                select(CONNECTIONS_T.c.connector, CONNECTIONS_T.c.external_account_id).where(
                    or_(*conds), CONNECTIONS_T.c.status != ConnectionStatus.disconnected
                )
            )
            for r in rows:
                key = (r.connector, r.external_account_id)
                linked.add(key)
                self._linked[key] = clock + LINKED_TTL_SECONDS
        return linked

    async def _write(
        self, conn: AsyncConnection, items: list[InboxItem]
    ) -> tuple[list[InboxResult | Exception], list[tuple[int, str | None]]]:
        now = utcnow()
        linked = await self._linked_accounts(conn, items)
        new_rows: list[dict[str, Any]] = []
        first_index: dict[tuple[str, str], int] = {}
        for idx, item in enumerate(items):
            key = (item.connector, item.dedupe_key)
            if key in first_index:
                continue
            first_index[key] = idx
            reason = item.ignore_reason
            if reason is None and (item.connector, item.account_id) not in linked:
                reason = "unknown_account"
            new_rows.append(
                {
                    "connector": item.connector,
                    "dedupe_key": item.dedupe_key,
                    "topic": item.topic[:64],
                    "resource": item.resource[:255],
                    "order_id": item.order_id,
                    "external_account_id": item.account_id[:64],
                    "status": EventStatus.ignored if reason else EventStatus.received,
                    "ignore_reason": reason,
                    "payload": item.payload,
                    "duplicate_count": 0,
                    "correlation_id": item.correlation_id,
                    "received_at": now,
                }
            )
        created = await self._insert(conn, new_rows)
        # Keys not inserted were there already (retries, duplicates): count them, no job.
        existing: dict[tuple[str, str], tuple[int, str]] = {}
        missing = {k for k in first_index if k not in created}
        if missing:
            conds = [
                and_(EVENTS_T.c.connector == c, EVENTS_T.c.dedupe_key.in_(ks))
                for c, ks in _group(missing).items()
            ]
            rows = await conn.execute(
                select(
                    EVENTS_T.c.id, EVENTS_T.c.connector, EVENTS_T.c.dedupe_key, EVENTS_T.c.status
                ).where(or_(*conds))
            )
            existing = {(r.connector, r.dedupe_key): (r.id, r.status) for r in rows}
            # Neither stored nor there: the database refused a value. The only one it
            # judges is the payload (MariaDB's JSON check: nested deeper than 32, say),
            # so those are stored again with the body kept as text.
            refused = [r for r in new_rows if (r["connector"], r["dedupe_key"]) in missing]
            refused = [r for r in refused if (r["connector"], r["dedupe_key"]) not in existing]
            if refused:
                log.warning("inbox_payload_kept_as_text", events=len(refused))
                created.update(await self._insert(conn, [as_text(r) for r in refused]))
        results: list[InboxResult | Exception] = []
        to_enqueue: list[tuple[int, str | None]] = []
        dup_counts: dict[int, int] = {}
        for idx, item in enumerate(items):
            key = (item.connector, item.dedupe_key)
            if key in created and first_index[key] == idx:
                event_id, status = created[key]
                if status == EventStatus.received:
                    to_enqueue.append((event_id, item.correlation_id))
                results.append(InboxResult(event_id, duplicate=False, status=status))
                continue
            found = created.get(key) or existing.get(key)
            if found is None:
                # Skipped by IGNORE for another reason than its key (a value the database
                # will not store): this sender alone gets the error.
                log.error("inbox_row_refused", connector=key[0], dedupe_key=key[1])
                results.append(RuntimeError(f"inbox row for {key} was not stored"))
                continue
            dup_counts[found[0]] = dup_counts.get(found[0], 0) + 1
            results.append(InboxResult(found[0], duplicate=True, status=found[1]))
        if dup_counts:
            await conn.execute(
                update(EVENTS_T)
                .where(EVENTS_T.c.id == bindparam("b_id"))
                .values(duplicate_count=EVENTS_T.c.duplicate_count + bindparam("b_n")),
                [{"b_id": k, "b_n": v} for k, v in dup_counts.items()],
            )
        return results, to_enqueue

    async def _dispatch(self) -> None:
        while True:
            events = [await self._outbox.get()]
            while len(events) < 500:
                try:
                    events.append(self._outbox.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._enqueue(events)
            except Exception as exc:  # bookkeeping only; the sweeper re-sends
                log.warning("inbox_dispatch_failed", error=str(exc), events=len(events))

    async def _enqueue(self, events: list[tuple[int, str | None]]) -> None:
        # One message per group of events: publishing costs far more than the ids it carries.
        sent = await jobs.send_now(
            [
                jobs.Job(
                    PROCESS_EVENT,
                    tuple(event_id for event_id, _ in events[i : i + EVENTS_PER_JOB]),
                    events[i][1],
                )
                for i in range(0, len(events), EVENTS_PER_JOB)
            ]
        )
        if not sent:
            return
        ids = [event_id for event_id, _ in events]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(EVENTS_T)
                    .where(EVENTS_T.c.id.in_(ids), EVENTS_T.c.status == EventStatus.received)
                    .values(status=EventStatus.queued, enqueued_at=utcnow())
                )
        except Exception as exc:  # only bookkeeping: the sweeper tolerates a re-send
            log.warning("inbox_mark_queued_failed", error=str(exc))


def _group(pairs: set[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, b in pairs:
        out.setdefault(a, []).append(b)
    return out
