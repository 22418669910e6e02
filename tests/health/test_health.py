"""Liveness, readiness (both ways) and metrics."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from structlog.testing import capture_logs

from conexapi.app import create_app
from conexapi.migrate import head_revisions
from conexapi.settings import Settings


async def test_healthz(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok_when_migrated(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["current"] == sorted(head_revisions())
    assert body["checks"]["redis"]["ok"] is True


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings, send_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)


async def test_readyz_503_when_not_migrated(settings_factory: Callable[..., Settings]) -> None:
    response = await _get(settings_factory(), "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is False
    assert body["checks"]["migrations"]["current"] == []
    assert "conexapi migrate" in body["checks"]["migrations"]["reason"]


async def test_readyz_503_when_database_unreachable(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir"
    settings = settings_factory(database_url=f"sqlite+aiosqlite:///{missing_dir}/x.db")
    response = await _get(settings, "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert checks["database"]["code"] == "database_unavailable"
    assert "unable to open" not in response.text and str(missing_dir) not in response.text


async def test_readyz_answers_a_stable_reason_and_logs_the_driver_text(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    # A table that is not Alembic's where Alembic keeps its revision: the check's query
    # fails with the driver's message, which names the SQL it ran.
    with sqlite3.connect(sqlite_url.split("///", 1)[1]) as db:
        db.execute("CREATE TABLE alembic_version (something_else INTEGER)")
    with capture_logs() as logs:
        response = await _get(settings_factory(), "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "code": "database_unavailable",
        "reason": "The database check failed; the server log (readiness_check_failed) has "
        "the details.",
    }
    for driver_text in ("version_num", "alembic_version", "SELECT", "sqlite", "Error"):
        assert driver_text not in response.text
    [logged] = [e for e in logs if e["event"] == "readiness_check_failed"]
    assert logged["check"] == "database" and "version_num" in logged["error"]


async def test_readyz_503_when_redis_unreachable(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    migrated_db: Callable[[str], Awaitable[str]],
) -> None:
    await migrated_db(sqlite_url)
    # Port 9 (discard) on localhost: nothing listens there.
    settings = settings_factory(redis_url="redis://127.0.0.1:9/0")
    response = await _get(settings, "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["migrations"]["ok"] is True
    assert checks["redis"]["ok"] is False
    assert checks["redis"]["code"] == "redis_unavailable"
    assert "127.0.0.1" not in response.text and "ConnectionError" not in response.text


@pytest.mark.redis
async def test_readyz_ok_with_redis(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    migrated_db: Callable[[str], Awaitable[str]],
    redis_url: str,
) -> None:
    await migrated_db(sqlite_url)
    response = await _get(settings_factory(redis_url=redis_url), "/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["redis"] == {"ok": True}


async def test_metrics_counts_requests(app_client: httpx.AsyncClient) -> None:
    await app_client.get("/healthz")
    response = await app_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'conexapi_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        response.text
    )
