"""20 jobs in two worker processes need a token the moment it expires: one refresh, no
``invalid_grant``, a working token for every job (MariaDB + Redis + the sandbox over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from conexapi.connections.service import link_marketplace_account
from conexapi.db import create_engine, create_sessionmaker, unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.models import Connection
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.base import NoLimit
from connectors.mercadolibre import factory as ml_factory
from tests.connections.flow import (
    CALLBACK,
    ML_CLIENT_ID,
    ML_CLIENT_SECRET,
    consent,
    token_requests,
)
from tests.connections.procs import run_jobs
from tests.connections.sandboxes import admin

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

PROCESSES = 2
JOBS_PER_PROCESS = 10


async def test_twenty_jobs_in_two_processes_refresh_exactly_once(
    mariadb_url: str,
    redis_url: str,
    migrated_db: Any,
    settings_factory: Callable[..., Settings],
    ml_sandbox: str,
    seller: int,
    key: str,
) -> None:
    await migrated_db(mariadb_url)
    values: dict[str, Any] = {
        "env": "test",
        "database_url": mariadb_url,
        "redis_url": redis_url,
        "encryption_keys": key,
        "connectors": {
            "mercadolibre": {
                "api_url": ml_sandbox,
                "auth_url": ml_sandbox,
                "client_id": ML_CLIENT_ID,
                "client_secret": ML_CLIENT_SECRET,
                "redirect_uri": CALLBACK,
            }
        },
    }
    settings = settings_factory(**values)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        # Link the seller through a real consent; its access token lives 3 seconds.
        admin(ml_sandbox, "PATCH", "/_sandbox/config", json={"expires_in": 3})
        async with httpx.AsyncClient() as http:
            connector = ml_factory(http, settings, NoLimit())
            request = connector.authorization_request(state=secrets.token_urlsafe(32))
            code = parse_qs(urlsplit(consent(request.url)).query)["code"][0]
            token_set = await connector.exchange_code(code, request.code_verifier)
            profile = await connector.get_profile(token_set.access_token.get_secret_value())
        admin(ml_sandbox, "PATCH", "/_sandbox/config", json={"expires_in": 21600})
        async with unit_of_work(sessions) as session:
            session.add(_merchant := _new_merchant())
            await session.flush()
            conn = await link_marketplace_account(
                session,
                _merchant.id,
                "mercadolibre",
                token_set,
                profile,
                keys=KeyRing.parse(settings.encryption_keys),
            )
            connection_id, version = conn.id, conn.version
            # Expired now, for every job at once.
            await session.execute(
                update(Connection)
                .where(Connection.id == connection_id)
                .values(token_expires_at=utcnow())
            )
        old_token = hashlib.sha256(token_set.access_token.get_secret_value().encode()).hexdigest()

        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES)
        results = ctx.Queue()
        prefix = f"conexapi-test:{secrets.token_hex(4)}:"
        workers = [
            ctx.Process(
                target=run_jobs,
                args=(values, connection_id, prefix, JOBS_PER_PROCESS, barrier, results),
            )
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        try:
            outputs = [await asyncio.to_thread(results.get, True, 180) for _ in workers]
        finally:
            for worker in workers:
                await asyncio.to_thread(worker.join, 30)
                if worker.is_alive():
                    worker.kill()
        jobs = [job for output in outputs for job in output]

        assert len(jobs) == PROCESSES * JOBS_PER_PROCESS
        failures = [job["error"] for job in jobs if not job["ok"]]
        assert failures == []
        assert {job["account"] for job in jobs} == {str(seller)}
        handed_out = {job["token"] for job in jobs}
        assert len(handed_out) == 1 and old_token not in handed_out

        refreshes = token_requests(ml_sandbox, "refresh_token")
        assert [r["status"] for r in refreshes] == [200]  # exactly one, and no invalid_grant
        everything = admin(ml_sandbox, "GET", "/_sandbox/requests", params={"path": "/oauth/token"})
        assert [r for r in everything if r["status"] != 200] == []

        async with sessions() as session:
            saved = await session.get(Connection, connection_id)
            assert saved is not None
            assert saved.status == "active" and saved.version == version + 1
    finally:
        await engine.dispose()


def _new_merchant() -> Any:
    from conexapi.models import Merchant

    return Merchant(name="Procesos", slug=f"procesos-{secrets.token_hex(3)}")
