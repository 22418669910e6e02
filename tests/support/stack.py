"""The whole product on this machine, as production runs it, for the end-to-end tests.

Sandboxes and the API are served by uvicorn on free localhost ports (threads of the test
process); workers are real ``conexapi worker`` processes on Redis and MariaDB, or the
embedded worker on SQLite. The sweeper is the production function, driven by the test
on a short interval (beat only schedules it).
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
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from pydantic_settings import BaseSettings

from conexapi.kit.resources import Resources, open_resources
from conexapi.migrate import upgrade
from conexapi.serving import free_port
from conexapi.settings import Environment, Settings
from connectors.registry import all_connectors
from tests.support.ids import APP_ID, SELLER_ID
from tests.support.seed import PipelineSetup, admin_api_key, orders_by_state, seed

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class ThreadedServer:
    """An ASGI app on a localhost port, served from a thread with its own event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the server's own loop (objects the app built live there)."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if self.error or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.port} failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as CONEXAPI_* variables (each connector's under its own names), for
    worker processes."""
    env = _variables(settings, lambda name: f"CONEXAPI_{name.upper()}")
    for own in settings.connectors.values():
        env.update(_variables(own, type(own).env_name))
    return env


def _variables(settings: BaseSettings, env_name: Callable[[str], str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None or name == "connectors":
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[env_name(name)] = str(getattr(value, "value", value))
    return env


def merge_settings(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """``values`` updated with ``overrides``, each connector's settings field by field."""
    connectors = overrides.pop("connectors", {})
    values.update(overrides)
    for name, own in connectors.items():
        values.setdefault("connectors", {}).setdefault(name, {}).update(own)


@dataclass
class Workers:
    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Each worker's metrics endpoint, by pid: several workers share this host.
    metrics_urls: dict[int, str] = field(default_factory=dict)

    def start(self, count: int = 1, concurrency: int = 2) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            n = len(self.procs) + 1
            log = open(self.log_dir / f"worker{n}.log", "wb")  # noqa: SIM115
            metrics_port = free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "conexapi.cli",
                    "worker",
                    "--concurrency",
                    str(concurrency),
                    "--",
                    "-n",
                    f"w{n}-{os.getpid()}@%h",
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=ROOT,
                env={
                    **os.environ,
                    **self.env,
                    "CONEXAPI_WORKER_METRICS_HOST": "127.0.0.1",
                    "CONEXAPI_WORKER_METRICS_PORT": str(metrics_port),
                    # Its metric files, left behind by a SIGKILL, go with the test's files.
                    "TMPDIR": str(self.log_dir),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.append(proc)
            self.metrics_urls[proc.pid] = f"http://127.0.0.1:{metrics_port}/metrics"
            started.append(proc)
        return started

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its children: no warm shutdown, no ack."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("worker*.log"))
        )


@dataclass
class Stack:
    settings: Settings
    ml: httpx.AsyncClient
    siigo: httpx.AsyncClient
    api: httpx.AsyncClient
    api_url: str
    workers: Workers | None
    res: Resources
    setup: PipelineSetup | None = None
    api_server: ThreadedServer | None = None

    async def sweep(self) -> None:
        """The production sweeper, run as a product process runs it: with that process's
        resources and job sender, on its loop. Here the API's: the job sender is one per
        process, bound to the API's loop and Redis client, and a send from this test's loop
        fails ("attached to a different loop"), which silently left retries unsent."""
        from conexapi.sync.sweeper import sweep

        assert self.api_server is not None
        await self.api_server.call(sweep(self.api_server.app.state.resources))

    async def orders(self) -> list[dict[str, Any]]:
        assert self.setup is not None
        return await orders_by_state(self.api, self.setup.pipeline_id)

    async def invoices(self) -> list[dict[str, Any]]:
        assert self.setup is not None
        resp = await self.siigo.get(
            "/_sandbox/invoices", params={"company": self.setup.company["company"]}
        )
        resp.raise_for_status()
        body = resp.json()
        return body if isinstance(body, list) else body.get("invoices", body.get("items", []))

    async def notify(self, order_id: str, **extra: Any) -> Any:
        resp = await self.ml.post(
            "/_sandbox/notify",
            json={
                "topic": "orders_v2",
                "resource": f"/orders/{order_id}",
                "user_id": SELLER_ID,
                **extra,
            },
        )
        resp.raise_for_status()
        return resp.json()

    async def invoice_posts(self) -> list[dict[str, Any]]:
        """Every invoice creation Siigo RECEIVED (its request log), oldest first: what it
        kept is deduplicated by its own idempotency, what it received is what we sent."""
        resp = await self.siigo.get(
            "/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"}
        )
        resp.raise_for_status()
        posts: list[dict[str, Any]] = resp.json()
        return posts

    async def assert_posts_justified(self, order_ids: list[str]) -> None:
        """Siigo RECEIVED an invoice POST for each order, under the order's own key, and no
        key more often than the order's runs justify: once, plus once per attempt that
        ended in a transient failure (its retry re-sends the same key, as it must after an
        unknown outcome)."""
        posts = Counter(p["headers"].get("idempotency-key") for p in await self.invoice_posts())
        assert set(posts) == {f"ML{i}" for i in order_ids}, posts
        rows = {r["external_order_id"]: r for r in await self.orders()}
        for order_id in order_ids:
            resp = await self.api.get(f"/api/v1/orders/{rows[order_id]['id']}")
            resp.raise_for_status()
            runs = resp.json()["runs"]
            retried = sum(r["status"] == "retry_scheduled" for r in runs)
            assert posts[f"ML{order_id}"] <= 1 + retried, (order_id, posts, runs)

    async def wait_quiet(self, seconds: float = 120) -> None:
        """Wait until the product has nothing left in hand: every inbox event turned into
        runs, no run queued or running, and (with Redis) no job waiting in the broker or
        delivered and not yet acknowledged. A negative check made after this sees all that
        the system was going to do, where a fixed sleep only hopes so."""
        from sqlalchemy import func, select

        from conexapi.models import ACTIVE_RUN_STATUSES, EventStatus, SyncRun, WebhookEvent
        from workers.celery_app import QUEUE

        deadline = time.monotonic() + seconds
        last_sweep = 0.0
        left: dict[str, int] = {}
        while time.monotonic() < deadline:
            async with self.res.sessionmaker() as s:
                left = {
                    "events": int(
                        await s.scalar(
                            select(func.count())
                            .select_from(WebhookEvent)
                            .where(
                                WebhookEvent.status.in_((EventStatus.received, EventStatus.queued))
                            )
                        )
                        or 0
                    ),
                    "runs": int(
                        await s.scalar(
                            select(func.count())
                            .select_from(SyncRun)
                            .where(SyncRun.status.in_(ACTIVE_RUN_STATUSES))
                        )
                        or 0
                    ),
                }
            if self.res.redis is not None:
                left["jobs_waiting"] = int(await self.res.redis.llen(QUEUE))
                # kombu keeps a delivered job here until the worker acknowledges it (acks_late).
                left["jobs_unacked"] = int(await self.res.redis.hlen("unacked"))
            if not any(left.values()):
                return
            if time.monotonic() - last_sweep > 1.0:
                await self.sweep()  # as beat would: a job the broker lost is sent again
                last_sweep = time.monotonic()
            await asyncio.sleep(0.3)
        logs = self.workers.logs() if self.workers else ""
        raise AssertionError(f"never quiet; left: {left}\nworker logs:\n{logs}")

    async def wait_for(
        self,
        check: Callable[[list[dict[str, Any]]], bool],
        seconds: float = 180,
        sweep_every: float = 1.0,
    ) -> list[dict[str, Any]]:
        """Poll the orders until ``check`` holds, running the sweeper as beat would."""
        deadline = time.monotonic() + seconds
        last_sweep = 0.0
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = await self.orders()
            if check(rows):
                return rows
            if time.monotonic() - last_sweep > sweep_every:
                await self.sweep()
                last_sweep = time.monotonic()
            await asyncio.sleep(0.3)
        logs = self.workers.logs() if self.workers else ""
        raise AssertionError(f"timed out; orders: {rows}\nworker logs:\n{logs}")


def base_settings(
    database_url: str,
    redis_url: str | None,
    ml_url: str,
    siigo_url: str,
    api_port: int,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "env": Environment.test,
        "database_url": database_url,
        "redis_url": redis_url,
        "api_port": api_port,
        "public_url": f"http://127.0.0.1:{api_port}",
        "connectors": {
            "mercadolibre": {
                "api_url": ml_url,
                "auth_url": ml_url,
                "client_id": APP_ID,
                "client_secret": "demo-client-secret",
                "redirect_uri": f"http://127.0.0.1:{api_port}/oauth/mercadolibre/callback",
            },
            "siigo": {"api_url": siigo_url},
        },
        "sweeper_interval_seconds": 1.0,
        # A heartbeat a loaded machine delays must not hand a live run to another worker
        # (the tests count POSTs); the test that kills a worker sets a short one.
        "run_heartbeat_timeout_seconds": 20.0,
        "queued_run_requeue_seconds": 20.0,
        "retry_base_seconds": 0.5,
        # Generous: on a loaded machine a call may be slow; the tests that want a client
        # timeout set a short one themselves.
        "http_timeout_seconds": 30.0,
        "log_level": "WARNING",
    }
    merge_settings(values, overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path,
    database_url: str,
    redis_url: str | None,
    *,
    worker_count: int = 1,
    orders: int = 6,
    seed_value: int = 11,
    mix: dict[str, Any] | None = None,
    siigo_mode: str = "production",
    before_seed: Callable[[Stack], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    specs = all_connectors()
    ml_srv = ThreadedServer(specs["mercadolibre"].sandbox_app()).start()
    siigo_srv = ThreadedServer(specs["siigo"].sandbox_app()).start()
    api_port = free_port()
    settings = base_settings(
        database_url, redis_url, ml_srv.url, siigo_srv.url, api_port, **overrides
    )
    await asyncio.to_thread(upgrade, database_url)

    from conexapi.app import create_app

    api_srv = ThreadedServer(create_app(settings), api_port).start()
    workers: Workers | None = None
    embedded = None
    if redis_url:
        workers = Workers(settings_env(settings), tmp_path)
        workers.start(worker_count)
    else:
        from workers import tasks  # noqa: F401
        from workers.celery_app import app as celery_app
        from workers.embedded import start_embedded_worker

        embedded = await asyncio.to_thread(start_embedded_worker, celery_app, settings=settings)
    res = await open_resources(settings)
    try:
        async with (
            httpx.AsyncClient(
                base_url=api_srv.url,
                timeout=60,
                headers={"Authorization": f"Bearer {await admin_api_key(settings)}"},
            ) as api,
            httpx.AsyncClient(base_url=ml_srv.url, timeout=60) as ml,
            httpx.AsyncClient(base_url=siigo_srv.url, timeout=60) as siigo,
        ):
            stack = Stack(settings, ml, siigo, api, api_srv.url, workers, res, api_server=api_srv)
            # Mercado Libre's 500 ms judgement of a delivery is a performance figure (bench/):
            # here a 200 that a loaded machine answers late must not count as a lost one.
            patched = await ml.patch("/_sandbox/config", json={"notify_timeout_ms": 30_000})
            patched.raise_for_status()
            if before_seed is not None:
                await before_seed(stack)
            stack.setup = await seed(
                api,
                ml,
                siigo,
                orders=orders,
                seed_value=seed_value,
                api_url=api_srv.url,
                mix=mix,
                siigo_mode=siigo_mode,
            )
            yield stack
    finally:
        await res.aclose()
        if workers is not None:
            workers.stop_all()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        api_srv.stop()
        ml_srv.stop()
        siigo_srv.stop()


# --- order states and counts shared by the end-to-end tests ------------------------------

DONE = {"invoiced", "closed", "needs_mapping", "needs_attention", "failed"}


def by_key(invoices: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(inv.get("idempotency_key")) for inv in invoices)


def settled(ids: list[str], states: set[str] = DONE) -> Any:
    def check(rows: list[dict[str, Any]]) -> bool:
        seen = {r["external_order_id"]: r["state"] for r in rows}
        return all(seen.get(i) in states for i in ids)

    return check
