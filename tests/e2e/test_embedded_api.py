"""``conexapi api`` on the embedded default (no Redis) processes what it accepts.

Without Redis the jobs go to Celery's in-memory broker, which only the API process itself
can read: the API runs the worker and beat in its own threads, and ``/readyz`` says so,
or answers 503 once they stop. With Redis it serves the API only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from celery.worker import state as worker_state

from conexapi import app as app_module
from conexapi.migrate import upgrade
from conexapi.serving import free_port
from conexapi.settings import Settings
from connectors.registry import all_connectors
from tests.support.ids import SELLER_ID
from tests.support.seed import admin_api_key, orders_by_state, seed
from tests.support.stack import ROOT, ThreadedServer, base_settings, settings_env

PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}
EMBEDDED_THREAD = "conexapi-embedded-worker"


async def _poll(
    what: str, check: Callable[[], Awaitable[Any]], seconds: float, logs: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()}"
        await asyncio.sleep(0.3)


@pytest.mark.slow
async def test_conexapi_api_without_redis_invoices_the_orders_it_is_notified_of(
    tmp_path: Path,
) -> None:
    specs = all_connectors()
    ml_srv = ThreadedServer(specs["mercadolibre"].sandbox_app()).start()
    siigo_srv = ThreadedServer(specs["siigo"].sandbox_app()).start()
    port = free_port()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'conexapi.db'}"
    settings = base_settings(db_url, None, ml_srv.url, siigo_srv.url, port)
    await asyncio.to_thread(upgrade, db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(settings_env(settings))
    assert "CONEXAPI_REDIS_URL" not in env
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    log_path = tmp_path / "api.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220  (started once, not awaited)
        [sys.executable, "-m", "conexapi.cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def logs() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    api_url = f"http://127.0.0.1:{port}"
    try:
        async with (
            httpx.AsyncClient(
                base_url=api_url,
                timeout=60,
                headers={"Authorization": f"Bearer {await admin_api_key(settings)}"},
            ) as api,
            httpx.AsyncClient(base_url=ml_srv.url, timeout=60) as ml,
            httpx.AsyncClient(base_url=siigo_srv.url, timeout=60) as siigo,
        ):

            async def ready() -> dict[str, Any] | None:
                assert proc.poll() is None, f"conexapi api exited\n{logs()}"
                with contextlib.suppress(httpx.TransportError):
                    resp = await api.get("/readyz")
                    if resp.status_code == 200:
                        body: dict[str, Any] = resp.json()
                        return body
                return None

            body = await _poll("/readyz", ready, 90, logs)
            assert body["checks"]["worker"]["ok"] is True

            setup = await seed(
                api, ml, siigo, orders=1, seed_value=5, api_url=api_url, mix=PAID_ONLY
            )
            order_id = setup.order_ids[0]
            notified = await ml.post(
                "/_sandbox/notify",
                json={
                    "topic": "orders_v2",
                    "resource": f"/orders/{order_id}",
                    "user_id": SELLER_ID,
                },
            )
            notified.raise_for_status()
            assert notified.json()["notifications"][0]["deliveries"][0]["status"] == 200

            async def invoiced() -> list[dict[str, Any]]:
                rows = await orders_by_state(api, setup.pipeline_id)
                return [
                    r
                    for r in rows
                    if r["external_order_id"] == order_id and r["state"] == "invoiced"
                ]

            (row,) = await _poll("the order to be invoiced", invoiced, 120, logs)
            posts = (
                await siigo.get(
                    "/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"}
                )
            ).json()
            assert [p["headers"]["idempotency-key"] for p in posts] == [f"ML{order_id}"]
            assert row["erp_document_id"] is not None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        ml_srv.stop()
        siigo_srv.stop()
    # Stopped by SIGTERM, worker threads included (uvicorn exits by the signal it got).
    assert proc.returncode in (0, -signal.SIGTERM), logs()


def _from_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Any:
    """What ``conexapi api`` builds (``create_app_from_env``) for these settings."""
    monkeypatch.setattr(app_module, "get_settings", lambda: settings)
    monkeypatch.setattr(app_module, "configure_logging", lambda *a, **k: None)
    return app_module.create_app_from_env()


async def test_readyz_reports_the_embedded_worker_and_503_once_it_stopped(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await asyncio.to_thread(upgrade, sqlite_url)
    monkeypatch.chdir(tmp_path)  # beat's schedule file
    app = _from_env(monkeypatch, settings_factory())
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.get("/readyz")
            assert resp.status_code == 200, resp.text
            assert resp.json()["checks"]["worker"]["ok"] is True
            worker = app.state.embedded_worker
            assert worker is not None and worker.thread.name == EMBEDDED_THREAD

            # The worker thread ends (as when its consumer dies): webhooks would still be
            # answered 200, so the process must stop saying it is ready.
            worker_state.should_stop = 0  # type: ignore[assignment]
            try:
                await asyncio.to_thread(worker.thread.join, 30)
            finally:
                worker_state.should_stop = None
            assert not worker.thread.is_alive()
            resp = await client.get("/readyz")
            assert resp.status_code == 503, resp.text
            body = resp.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["worker"]["ok"] is False
            assert "embedded worker has stopped" in body["checks"]["worker"]["reason"]
            assert "restart" in body["checks"]["worker"]["reason"]
    assert not any(t.name == EMBEDDED_THREAD for t in threading.enumerate())


async def test_with_redis_conexapi_api_serves_the_api_only(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await asyncio.to_thread(upgrade, sqlite_url)
    # Nothing is sent or read in this test: the address only has to be configured.
    app = _from_env(monkeypatch, settings_factory(redis_url="redis://127.0.0.1:9/0"))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        assert app.state.embedded_worker is None
        assert not any(t.name == EMBEDDED_THREAD for t in threading.enumerate())


def test_several_api_processes_without_redis_are_refused(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from conexapi import cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings_factory())
    result = CliRunner().invoke(cli.cli, ["api", "--workers", "2"])
    assert result.exit_code == 2
    assert "CONEXAPI_REDIS_URL" in result.output
