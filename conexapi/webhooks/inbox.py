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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.kit import jobs
from conexapi.models import Connection, ConnectionStatus, EventStatus, WebhookEvent, utcnow

log = structlog.get_logger(__name__)

PROCESS_EVENT = "conexapi.process_event"

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
    payload: dict[str, Any]
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
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 250,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[InboxItem, asyncio.Future[InboxResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Sending is decoupled from writing: a broker that is slow or down must never
        # hold up the commits that the senders of notifications are waiting for.
        self._outbox: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")
            self._dispatcher = asyncio.create_task(self._dispatch(), name="inbox-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            # Let queued requests finish before closing; unsent jobs are the sweeper's.
            await self._queue.join()
            for task in (self._task, self._dispatcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._task = self._dispatcher = None

    async def submit(self, item: InboxItem) -> InboxResult:
        if self._task is None:
            raise RuntimeError("inbox writer is not running")
        fut: asyncio.Future[InboxResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._flush(batch)
            except Exception as exc:  # the database is down: the senders get a 503, retry
                log.error("inbox_write_failed", error=str(exc), batch=len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _flush(self, batch: Sequence[tuple[InboxItem, asyncio.Future[InboxResult]]]) -> None:
        BATCH.observe(len(batch))
        for attempt in range(3):
            try:
                results, to_enqueue = await self._write([item for item, _ in batch])
                break
            except IntegrityError:
                # Another replica inserted one of these keys between our read and write:
                # read again, they are duplicates now.
                if attempt == 2:
                    raise
        for (item, fut), result in zip(batch, results, strict=True):
            EVENTS.labels(item.connector, "duplicate" if result.duplicate else result.status).inc()
            if not fut.done():
                fut.set_result(result)
        for pending in to_enqueue:
            self._outbox.put_nowait(pending)

    async def _write(
        self, items: list[InboxItem]
    ) -> tuple[list[InboxResult], list[tuple[int, str | None]]]:
        now = utcnow()
        async with self.sessionmaker() as session:
            keyset = {(i.connector, i.dedupe_key) for i in items}
            existing: dict[tuple[str, str], tuple[int, str]] = {}
            conds = [
                and_(WebhookEvent.connector == c, WebhookEvent.dedupe_key.in_(ks))
                for c, ks in _group(keyset).items()
            ]
            rows = await session.execute(
                select(
                    WebhookEvent.id,
                    WebhookEvent.connector,
                    WebhookEvent.dedupe_key,
                    WebhookEvent.status,
                ).where(or_(*conds))
            )
            for row in rows:
                existing[(row.connector, row.dedupe_key)] = (row.id, row.status)

            accounts = {(i.connector, i.account_id) for i in items if i.account_id}
            linked: set[tuple[str, str]] = set()
            if accounts:
                conds = [
                    and_(Connection.connector == c, Connection.external_account_id.in_(ids))
                    for c, ids in _group(accounts).items()
                ]
                rows = await session.execute(
                    select(Connection.connector, Connection.external_account_id).where(
                        or_(*conds), Connection.status != ConnectionStatus.disconnected
                    )
                )
                linked = {(r.connector, r.external_account_id) for r in rows}

            new_rows: list[dict[str, Any]] = []
            first_index: dict[tuple[str, str], int] = {}
            dup_counts: dict[int, int] = {}
            for idx, item in enumerate(items):
                key = (item.connector, item.dedupe_key)
                if key in existing:
                    dup_counts[existing[key][0]] = dup_counts.get(existing[key][0], 0) + 1
                    continue
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
            created: dict[tuple[str, str], tuple[int, str]] = {}
            if new_rows:
                result = await session.execute(
                    insert(WebhookEvent).returning(
                        WebhookEvent.id,
                        WebhookEvent.connector,
                        WebhookEvent.dedupe_key,
                        WebhookEvent.status,
                    ),
                    new_rows,
                )
                for row in result:
                    created[(row.connector, row.dedupe_key)] = (row.id, row.status)
            # Duplicates inside this batch count against the row just created.
            for idx, item in enumerate(items):
                key = (item.connector, item.dedupe_key)
                if key in created and first_index.get(key) != idx:
                    event_id = created[key][0]
                    dup_counts[event_id] = dup_counts.get(event_id, 0) + 1
            if dup_counts:
                table = WebhookEvent.__table__
                assert isinstance(table, Table)
                await session.execute(
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values(duplicate_count=table.c.duplicate_count + bindparam("b_n")),
                    [{"b_id": k, "b_n": v} for k, v in dup_counts.items()],
                )
            await session.commit()

        results = []
        to_enqueue = []
        for idx, item in enumerate(items):
            key = (item.connector, item.dedupe_key)
            if key in created:
                event_id, status = created[key]
                duplicate = first_index.get(key) != idx
                if not duplicate and status == EventStatus.received:
                    to_enqueue.append((event_id, item.correlation_id))
            else:
                event_id, status = existing[key]
                duplicate = True
            results.append(InboxResult(event_id=event_id, duplicate=duplicate, status=status))
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
        sent = await jobs.send_now(
            [jobs.Job(PROCESS_EVENT, (event_id,), cid) for event_id, cid in events]
        )
        if not sent:
            return
        ids = [event_id for event_id, _ in events]
        try:
            async with self.sessionmaker() as session:
                await session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id.in_(ids), WebhookEvent.status == EventStatus.received)
                    .values(status=EventStatus.queued, enqueued_at=utcnow())
                )
                await session.commit()
        except Exception as exc:  # only bookkeeping: the sweeper tolerates a re-send
            log.warning("inbox_mark_queued_failed", error=str(exc))


def _group(pairs: set[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, b in pairs:
        out.setdefault(a, []).append(b)
    return out
