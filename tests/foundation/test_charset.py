"""MariaDB stores text as utf8mb4 whatever the server's default: ``conexapi migrate`` makes
an empty latin1 database utf8mb4 and refuses one whose tables are not, ``/readyz`` says
so, and an emoji (a 4-byte character) round-trips."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from conexapi.app import create_app
from conexapi.auth.service import bootstrap_api_key
from conexapi.db import create_engine, create_sessionmaker
from conexapi.migrate import charset_problem, upgrade
from conexapi.models import Connection, Merchant, OrderSync, Pipeline, WebhookEvent
from conexapi.settings import Settings
from tests.support.webhooks import link_seller

pytestmark = pytest.mark.mariadb

CONEXAPI = Path(sys.executable).with_name("conexapi")
APP_ID = "5503910054141466"
SELLER = 468424240
#: Four-byte characters (emoji) and two-byte ones (Spanish).
BUYER = "Ñandú Gómez 🛍️😀"


def _migrate(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(CONEXAPI_ENV="test", CONEXAPI_DATABASE_URL=url)
    return subprocess.run(
        [str(CONEXAPI), "migrate"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


async def _sql(url: str, *statements: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _charset_problem(url: str) -> str | None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(charset_problem)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, send_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_migrate_makes_an_empty_latin1_database_utf8mb4_and_emoji_round_trip(
    mariadb_url: str, tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    # As created on a server whose default is latin1 (MariaDB's own default).
    await _sql(mariadb_url, "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci")
    assert "latin1" in (await _charset_problem(mariadb_url) or "")

    result = await asyncio.to_thread(_migrate, mariadb_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "switched it to utf8mb4" in result.stdout
    assert await _charset_problem(mariadb_url) is None

    settings = settings_factory(
        database_url=mariadb_url, connectors={"mercadolibre": {"client_id": APP_ID}}
    )
    await link_seller(settings, str(SELLER))
    engine = create_engine(settings)
    key = await bootstrap_api_key(create_sessionmaker(engine), "tests-admin")
    admin = {"Authorization": f"Bearer {key}"}
    async with _client(settings) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["charset"] == {"ok": True}

        # Through the ops API: a merchant's name.
        created = await client.post(
            "/api/v1/merchants", json={"name": BUYER, "slug": "emoji"}, headers=admin
        )
        assert created.status_code == 201, created.text
        read = await client.get(f"/api/v1/merchants/{created.json()['id']}", headers=admin)
        assert read.json()["name"] == BUYER

        # Through the webhook: the inbox keeps the body as sent, raw UTF-8 included.
        now = datetime.now(UTC).isoformat()
        note = {
            "resource": "/orders/2000003508419013",
            "user_id": SELLER,
            "topic": "orders_v2",
            "application_id": int(APP_ID),
            "attempts": 1,
            "sent": now,
            "received": now,
            "buyer": BUYER,
        }
        posted = await client.post(
            "/webhooks/mercadolibre",
            content=json.dumps(note, ensure_ascii=False).encode(),
            headers={"content-type": "application/json"},
        )
        assert posted.status_code == 200, posted.text

    try:
        async with create_sessionmaker(engine)() as session:
            event = (await session.scalars(select(WebhookEvent))).one()
            assert event.payload is not None and event.payload["buyer"] == BUYER
            # And an order's error naming its buyer, as the runner writes it.
            pipeline = await _pipeline(session)
            order = OrderSync(
                pipeline_id=pipeline.id,
                external_order_id="2000003508419013",
                last_error_message=f"Siigo refused customer {BUYER}",
            )
            session.add(order)
            await session.commit()
            order_id = order.id
        async with create_sessionmaker(engine)() as session:
            again = await session.get(OrderSync, order_id)
            assert again is not None
            assert again.last_error_message == f"Siigo refused customer {BUYER}"
    finally:
        await engine.dispose()


async def _pipeline(session: AsyncSession) -> Pipeline:
    merchant = (await session.scalars(select(Merchant).where(Merchant.slug == "m"))).one()
    source = (await session.scalars(select(Connection))).one()
    pipeline = Pipeline(
        merchant_id=merchant.id,
        name=f"Pedidos de {BUYER}",
        source_connection_id=source.id,
        target_connection_id=source.id,
    )
    session.add(pipeline)
    await session.flush()
    return pipeline


async def test_migrate_refuses_and_readyz_fails_when_tables_are_not_utf8mb4(
    mariadb_url: str, tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    # A schema made on a latin1 server by an older release.
    await asyncio.to_thread(upgrade, mariadb_url)
    await _sql(
        mariadb_url,
        "ALTER TABLE merchants CONVERT TO CHARACTER SET latin1 COLLATE latin1_swedish_ci",
        "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci",
    )

    result = await asyncio.to_thread(_migrate, mariadb_url, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("migrate: database conexapi_t_")
    assert "ALTER DATABASE" in lines[0]
    assert "CONVERT TO CHARACTER SET utf8mb4" in lines[0]
    assert lines[0].endswith("merchants")
    # Refused, not converted: converting tables is the operator's call (backup first).
    assert "merchants" in (await _charset_problem(mariadb_url) or "")

    async with _client(settings_factory(database_url=mariadb_url)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    charset = ready.json()["checks"]["charset"]
    assert charset["ok"] is False
    assert "ALTER TABLE" in charset["reason"] and "merchants" in charset["reason"]
