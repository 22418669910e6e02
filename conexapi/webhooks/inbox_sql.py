"""The inbox's SQL that SQLAlchemy does not compile (MariaDB's batch INSERT, sent through
the driver) and how the database's errors read to the inbox writer (``inbox.py``)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC
from typing import Any

import pymysql
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from conexapi.models import WebhookEvent

EVENTS_T: Table = WebhookEvent.__table__  # type: ignore[assignment]

_INBOX_COLUMNS = (
    "connector",
    "dedupe_key",
    "topic",
    "resource",
    "order_id",
    "external_account_id",
    "status",
    "ignore_reason",
    "payload",
    "duplicate_count",
    "correlation_id",
    "received_at",
)
# Constant names; every value goes through the driver's escaping (see insert_mariadb).
_INSERT_MARIADB = (
    f"INSERT IGNORE INTO {EVENTS_T.name} ({', '.join(_INBOX_COLUMNS)}) VALUES {{}} "  # noqa: S608
    "RETURNING id, connector, dedupe_key, status"
)


async def insert_mariadb(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """The batch's INSERT straight through the driver: its escaping, one statement.

    The one statement of the product not compiled by SQLAlchemy, because it is the one
    run for every notification: compiling and binding a multi-row insert through the
    table cost a quarter of the endpoint's CPU. The columns and values are the same as
    the SQLite path's (the inbox tests run both); times are naive UTC as ``UTCDateTime``
    stores them, the payload the text received.
    """
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    escape = driver.escape
    values = []
    for row in rows:
        row = dict(row, received_at=row["received_at"].astimezone(UTC).replace(tzinfo=None))
        row["status"] = str(row["status"])
        values.append("(" + ",".join([escape(row[c]) for c in _INBOX_COLUMNS]) + ")")
    cursor = None
    try:
        cursor = await driver.cursor()
        await cursor.execute(_INSERT_MARIADB.format(",".join(values)))
        found = await cursor.fetchall()
    except Exception as exc:
        if link_lost(exc) or driver.closed:
            # What SQLAlchemy does for the statements it runs: this connection is not
            # used again, and the batch is not retried row by row.
            await conn.invalidate()
            raise LinkLost(str(exc)) from exc
        raise
    finally:
        if cursor is not None:
            with contextlib.suppress(Exception):
                await cursor.close()
    return {(connector, key): (int(id_), status) for id_, connector, key, status in found}


class LinkLost(Exception):
    """The database connection broke during the inbox's INSERT."""


#: Errors for a connection that is gone: can't connect, server gone away, lost during
#: the query, commands out of sync, lost during the handshake, connection killed,
#: disconnected for inactivity.
_LOST_LINK_CODES = frozenset({1927, 2003, 2006, 2013, 2014, 2055, 4031})


def link_lost(exc: BaseException) -> bool:
    if isinstance(exc, OSError | pymysql.err.InterfaceError | pymysql.err.InternalError):
        return True  # InternalError: a broken packet stream, after which the driver closes
    return isinstance(exc, pymysql.err.OperationalError) and error_code(exc) in _LOST_LINK_CODES


#: MariaDB's "CONSTRAINT … failed" (the JSON column's validity check).
CONSTRAINT_FAILED = 4025


def error_code(exc: BaseException) -> int | None:
    """The server's or the client's error number (of the driver's error, if wrapped)."""
    args = getattr(getattr(exc, "orig", None) or exc, "args", None)
    return args[0] if args and isinstance(args[0], int) else None


def as_text(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its body kept as a JSON string: valid JSON whatever the body was."""
    return row | {"payload": json.dumps({"raw": row["payload"]})}


def statement_refused(exc: BaseException) -> bool:
    """The statement was refused, by the database or the driver, and not for a lost link."""
    if isinstance(exc, LinkLost):
        return False
    return not (isinstance(exc, DBAPIError) and exc.connection_invalidated)
