"""Shared fixtures for the whole test suite.

Services: tests marked ``mariadb`` or ``redis`` (or using the ``mariadb_url`` / ``redis_url``
fixtures, which add the mark) need a server named by ``CONEXAPI_TEST_MARIADB_URL`` /
``CONEXAPI_TEST_REDIS_URL``. Without the variable they skip, saying why. With
``CONEXAPI_REQUIRE_SERVICES=1`` (CI) a missing variable or an unreachable server FAILS the
test instead, so CI cannot go green by skipping them.

Every test that touches a server works in a namespace of its own (a fresh MariaDB
database, a Redis db number claimed for the session), because other test sessions run on
the same servers at the same time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pymysql
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import URL, make_url

from conexapi.kit import jobs
from conexapi.migrate import upgrade
from conexapi.settings import Environment, Settings
from tests.support.jobs import RecordingSender

MARIADB_ENV = "CONEXAPI_TEST_MARIADB_URL"
REDIS_ENV = "CONEXAPI_TEST_REDIS_URL"
REQUIRE_ENV = "CONEXAPI_REQUIRE_SERVICES"

_SERVICE_FIXTURES = {"mariadb_url": "mariadb", "redis_url": "redis"}
#: A test that uses one of these (directly or through another fixture) works on a database
#: or files of its own, so it is not a pure unit test (``make test-fast`` leaves it out).
_NOT_UNIT_FIXTURES = {"sqlite_url", "mariadb_url", "redis_url", "tmp_path", "tmp_path_factory"}
_NOT_UNIT_MARKS = ("mariadb", "redis", "slow", "integration")


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


# --- service availability -------------------------------------------------------------


def _mariadb_connect(url: URL, database: str | None = None) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        connect_timeout=3,
        autocommit=True,
    )


@cache
def _service_problem(service: str) -> str | None:
    """None when the service answers, else why it cannot be used (checked once per session)."""
    env = MARIADB_ENV if service == "mariadb" else REDIS_ENV
    raw = os.environ.get(env)
    if not raw:
        return f"{env} is not set"
    try:
        if service == "mariadb":
            _mariadb_connect(make_url(raw)).close()
        else:
            client = redis.Redis.from_url(raw, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
    except Exception as exc:
        return f"{service} at {env} is unreachable: {type(exc).__name__}: {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, mark in _SERVICE_FIXTURES.items():
            if fixture in fixtures:
                item.add_marker(getattr(pytest.mark, mark))
        # ``unit`` (``make test-fast``): no service, database, server, process or files.
        # Decided here from fixtures and marks, so a new test is classed without anyone
        # remembering to; a module that builds such things by hand says ``integration``.
        if not fixtures & _NOT_UNIT_FIXTURES and not any(
            item.get_closest_marker(mark) for mark in _NOT_UNIT_MARKS
        ):
            item.add_marker(pytest.mark.unit)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in ("mariadb", "redis"):
        if item.get_closest_marker(service) is None:
            continue
        problem = _service_problem(service)
        if problem is None:
            continue
        if services_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {problem}", pytrace=False)
        pytest.skip(problem)


# --- settings and databases ------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in this test's temporary directory (not created yet)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'conexapi.db'}"


@pytest.fixture
def settings_factory(sqlite_url: str) -> Callable[..., Settings]:
    """``settings_factory(**overrides) -> Settings`` with ``env=test`` and ``sqlite_url``.

    The ``.env`` file is not read, so a developer's local configuration cannot leak into
    tests; ``overrides`` are Settings field names (``database_url=..., redis_url=...``).
    """

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": Environment.test,
            "database_url": sqlite_url,
            "redis_url": None,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """URL of a new, empty MariaDB database ``conexapi_t_<random>``, dropped afterwards.

    The server comes from ``CONEXAPI_TEST_MARIADB_URL``; the test gets the ``mariadb`` mark.
    """
    server = make_url(os.environ[MARIADB_ENV])
    name = f"conexapi_t_{secrets.token_hex(5)}"
    conn = _mariadb_connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = _mariadb_connect(server)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


_CLAIM_KEY = "conexapi:test:redis-db:{}"
_CLAIM_TTL_SECONDS = 4 * 3600


@pytest.fixture(scope="session")
def _redis_session_db() -> Iterator[str]:
    """Claim a Redis db number no other test session holds (SET NX in the base db)."""
    base_url = os.environ[REDIS_ENV]
    base = redis.Redis.from_url(base_url, socket_connect_timeout=2, socket_timeout=5)
    base_db = int(base.connection_pool.connection_kwargs.get("db", 0))
    try:
        count = int(base.config_get("databases").get("databases") or 16)
    except redis.ResponseError:  # CONFIG may be disabled on a managed server
        count = 16
    token = f"{os.getpid()}:{secrets.token_hex(4)}"
    claimed = None
    for db in range(1, count):
        if db == base_db:
            continue
        if base.set(_CLAIM_KEY.format(db), token, nx=True, ex=_CLAIM_TTL_SECONDS):
            claimed = db
            break
    if claimed is None:
        base.close()
        pytest.fail("no free Redis db number for this test session", pytrace=False)
    session_url = urlsplit(base_url)._replace(path=f"/{claimed}", query="").geturl()
    client = redis.Redis.from_url(session_url)
    client.flushdb()
    try:
        yield session_url
    finally:
        client.flushdb()
        client.close()
        if base.get(_CLAIM_KEY.format(claimed)) == token.encode():
            base.delete(_CLAIM_KEY.format(claimed))
        base.close()


@pytest.fixture
def redis_url(_redis_session_db: str) -> Iterator[str]:
    """URL of a Redis db number owned by this test session; flushed after each test.

    The server comes from ``CONEXAPI_TEST_REDIS_URL``; the test gets the ``redis`` mark.
    """
    yield _redis_session_db
    client = redis.Redis.from_url(_redis_session_db)
    try:
        client.flushdb()
    finally:
        client.close()


async def _upgrade_to_head(url: str) -> str:
    # Alembic's env.py runs its own event loop; keep it off the test's loop.
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture
def migrated_db() -> Callable[[str], Awaitable[str]]:
    """``await migrated_db(url)`` upgrades that database to head and returns the URL."""
    return _upgrade_to_head


# --- the application -------------------------------------------------------------------


@pytest.fixture
def sent_jobs() -> Iterator[list[jobs.Job]]:
    """The jobs sent after commits during the test (installs a recording sender)."""
    sender = RecordingSender()
    jobs.set_sender(sender)
    try:
        yield sender.jobs
    finally:
        jobs.set_sender(None)


@pytest.fixture
async def app_settings(settings_factory: Callable[..., Settings], sqlite_url: str) -> Settings:
    """Settings for ``app``: a migrated SQLite file. Override this fixture to change them."""
    await _upgrade_to_head(sqlite_url)
    return settings_factory()


@pytest.fixture
def app(app_settings: Settings, sent_jobs: list[jobs.Job]) -> FastAPI:
    """``create_app(app_settings)``; jobs go to ``sent_jobs`` instead of a broker."""
    from conexapi.app import create_app

    return create_app(app_settings, send_jobs=False)


@pytest.fixture
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` on ``app`` through ASGI, with the lifespan run."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            from tests.support.auth import register

            register(client, app)  # tests.support.auth.admin_headers(client) finds the app
            yield client
