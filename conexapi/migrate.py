"""Alembic from code: ``conexapi migrate``, the readiness check and the drift check use these.

The same migrations run on MariaDB and SQLite. :func:`compare_type` and :func:`schema_drift`
make "the migrated schema matches the models" checkable on both, closing three gaps in
Alembic's own comparison: MariaDB stores JSON as LONGTEXT (equal only when the column
keeps its ``json_valid`` CHECK), DATETIME fractional seconds (``UTCDateTime`` is DATETIME(6)
on MariaDB; DATETIME(0) would silently drop microseconds), and generated columns (Alembic
only warns when a ``Computed`` expression differs).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Column, Computed, Connection, DateTime, MetaData, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator, TypeEngine

from conexapi.models.base import MYSQL_CHARSET, MYSQL_COLLATION

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> list[str]:
    """Upgrade to ``revision``; returns what it did besides the migrations (one line each).

    Raises :class:`CharsetError` on a MariaDB database that is not utf8mb4.
    """
    cfg = alembic_config(database_url)
    cfg.attributes["ensure_utf8mb4"] = True
    cfg.attributes["notes"] = []
    command.upgrade(cfg, revision)
    notes: list[str] = cfg.attributes["notes"]
    return notes


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


async def schema_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot be used yet, saying what to run; None when it can."""
    async with engine.connect() as conn:
        current = await conn.run_sync(current_revisions)
        charset = await conn.run_sync(charset_problem)
    heads = head_revisions()
    if not current:
        return "the database has no tables yet: run `conexapi migrate` first"
    if current != heads:
        return (
            f"the database is at revision {', '.join(sorted(current))}, this version needs "
            f"{', '.join(sorted(heads))}: run `conexapi migrate` first"
        )
    return charset


# --- character set -------------------------------------------------------------------


class CharsetError(Exception):
    """The MariaDB database is not utf8mb4; the message says what to run."""


def _database_charset(conn: Connection) -> tuple[str, str]:
    row = conn.execute(
        text(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = DATABASE()"
        )
    ).one()
    return str(row[0]), str(row[1])


def charset_problem(conn: Connection) -> str | None:
    """Why this MariaDB database cannot hold all of Unicode, and what to run; None when it
    can (every table and text column utf8mb4, and the database's default too, which new
    tables and Alembic's own table take), or on SQLite (always UTF-8)."""
    if not _is_mysql(conn):
        return None
    database, default = _database_charset(conn)
    tables = list(
        conn.execute(
            text(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_TYPE = 'BASE TABLE' AND TABLE_COLLATION NOT LIKE :prefix"
                " UNION SELECT TABLE_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME <> :charset"
                " ORDER BY 1"
            ),
            {"prefix": f"{MYSQL_CHARSET}%", "charset": MYSQL_CHARSET},
        ).scalars()
    )
    if default == MYSQL_CHARSET and not tables:
        return None
    charset = f"CHARACTER SET {MYSQL_CHARSET} COLLATE {MYSQL_COLLATION}"
    found, steps = [], []
    if default != MYSQL_CHARSET:
        found.append(f"defaults to {default}")
        steps.append(f"run ALTER DATABASE `{database}` {charset};")
    if tables:
        found.append(f"has {len(tables)} table(s) in another character set")
        steps.append(
            f"back up, then run ALTER TABLE <table> CONVERT TO {charset}; for each of: "
            + ", ".join(tables)
        )
    return (
        f"database {database} {' and '.join(found)}, not {MYSQL_CHARSET} (emoji and other "
        "4-byte characters would be refused): " + " then ".join(steps)
    )


def ensure_utf8mb4(conn: Connection) -> str | None:
    """Refuse to migrate a MariaDB database that is not utf8mb4 (:class:`CharsetError`),
    except an empty one, which is switched to utf8mb4: with no table there is no data to
    convert, only the default its tables will get. Returns what it changed, if anything.

    Run it outside a migration's transaction: ``ALTER DATABASE`` commits.
    """
    problem = charset_problem(conn)
    if problem is None:
        return None
    database, default = _database_charset(conn)
    empty = not conn.execute(
        text("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    ).scalar()
    if not empty:
        raise CharsetError(problem)
    try:
        conn.exec_driver_sql(
            f"ALTER DATABASE `{database}` CHARACTER SET {MYSQL_CHARSET} COLLATE {MYSQL_COLLATION}"
        )
    except DBAPIError:
        raise CharsetError(f"{problem} (as a user allowed to alter the database)") from None
    return f"database {database} was empty and {default}: switched it to {MYSQL_CHARSET}"


# --- drift ---------------------------------------------------------------------------


def _is_mysql(conn: Connection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def _dialect_impl(type_: TypeEngine[Any], conn: Connection) -> TypeEngine[Any]:
    impl = type_.dialect_impl(conn.dialect)
    if isinstance(impl, TypeDecorator):
        return impl.load_dialect_impl(conn.dialect)
    return impl


def _json_checked(conn: Connection, table: str, column: str) -> bool:
    clauses = conn.execute(
        text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :table"
        ),
        {"table": table},
    ).scalars()
    return _normalize_sql(f"json_valid({column})") in {_normalize_sql(str(c)) for c in clauses}


def compare_type(
    context: MigrationContext,
    inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """True when the types differ, None to let Alembic decide (the ``compare_type`` hook)."""
    conn = context.connection
    if conn is None or not _is_mysql(conn):
        return None
    wanted = _dialect_impl(metadata_type, conn)
    if isinstance(wanted, DateTime) and isinstance(inspected_type, DateTime):
        if (getattr(wanted, "fsp", None) or 0) != (getattr(inspected_type, "fsp", None) or 0):
            return True
        return None
    if isinstance(wanted, JSON):
        if isinstance(inspected_type, JSON):
            return False
        # MariaDB's JSON is LONGTEXT with a json_valid CHECK; plain LONGTEXT is not JSON.
        table = inspected_column.table.name
        return not _json_checked(conn, table, str(inspected_column.name))
    return None


def _normalize_sql(sql: str) -> str:
    return re.sub(r"[\s()'\"`\[\]]", "", sql).lower()


def _computed_drift(conn: Connection, metadata: MetaData) -> list[tuple[Any, ...]]:
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    diffs: list[tuple[Any, ...]] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue  # compare_metadata reports the missing table
        reflected = {c["name"]: c.get("computed") for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in reflected:
                continue
            want = column.computed
            got = reflected[column.name]
            want_sql = (
                _normalize_sql(str(want.sqltext.compile(dialect=conn.dialect)))
                if isinstance(want, Computed)
                else None
            )
            got_sql = _normalize_sql(str(got["sqltext"])) if got else None
            want_persisted = bool(want.persisted) if isinstance(want, Computed) else None
            got_persisted = bool(got.get("persisted")) if got else None
            if (want_sql, want_persisted) != (got_sql, got_persisted):
                diffs.append(("modify_computed", table.name, column.name, want_sql, got_sql))
    return diffs


def schema_drift(conn: Connection, metadata: MetaData | None = None) -> list[Any]:
    """What autogenerate would change to make the database match ``metadata``; [] when none.

    Run it with ``AsyncConnection.run_sync``. ``metadata`` defaults to the models'.
    """
    if metadata is None:
        from conexapi.models import Base

        metadata = Base.metadata
    context = MigrationContext.configure(
        conn, opts={"compare_type": compare_type, "compare_server_default": False}
    )
    with warnings.catch_warnings():
        # Alembic warns about differing Computed expressions; _computed_drift reports them.
        warnings.filterwarnings("ignore", message="Computed default on .* cannot be modified")
        diffs: list[Any] = list(compare_metadata(context, metadata))
    return diffs + _computed_drift(conn, metadata)
