"""Per-process resources for Celery workers.

Celery runs sync task functions; the service code is async. Each worker child process
gets one event loop, and the engine, Redis client and HTTP clients are created on that
loop (in ``worker_process_init``, or lazily for the solo pool and the embedded worker) and
closed on shutdown. Every task's coroutine runs on that loop, so pooled connections are
never used from a loop they were not created on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker
from conexapi.kit import jobs
from conexapi.kit.resources import Resources, open_resources
from conexapi.settings import Settings, get_settings

T = TypeVar("T")
log = structlog.get_logger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (as uvicorn does for the API), else asyncio's own.

    A worker's loop spends most of its CPU in socket reads and writes to MariaDB, Redis
    and the upstream APIs; uvloop does those in C.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = new_event_loop()
        try:
            self.resources: Resources = self.loop.run_until_complete(open_resources(settings))
        except BaseException:
            self.loop.close()
            raise
        global _installed_sender
        current = jobs.get_sender()
        # Jobs a task queues (a follow-up run, say) go to the broker this worker uses. A
        # sender an earlier runtime installed (closed, or the parent's before a fork) is
        # bound to that runtime's loop and Redis client: this runtime replaces it.
        if current is None or current is _installed_sender:
            from workers.celery_app import app
            from workers.sender import sender_for

            _installed_sender = sender_for(app, self.resources.redis)
            jobs.set_sender(_installed_sender)

    @property
    def engine(self) -> AsyncEngine:
        return self.resources.engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.resources.sessionmaker

    def run(self, factory: Callable[[Resources], Awaitable[T]]) -> T:
        return self.loop.run_until_complete(factory(self.resources))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.resources.aclose())
        finally:
            self.loop.close()


_runtime: WorkerRuntime | None = None
_settings: Settings | None = None
_installed_sender: jobs.JobSender | None = None


def configure_runtime(settings: Settings | None) -> None:
    """Build runtimes from ``settings`` instead of the environment (embedded worker, tests).

    Takes effect for the next runtime created; ``None`` goes back to the environment.
    """
    global _settings
    _settings = settings


def get_runtime() -> WorkerRuntime:
    """This process's runtime, created on first use (and anew after a fork)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = WorkerRuntime(_settings or get_settings())
    return _runtime


def init_runtime() -> None:
    get_runtime()


def close_runtime() -> None:
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.close()
    _runtime = None


__all__ = [
    "WorkerRuntime",
    "close_runtime",
    "configure_runtime",
    "create_engine",
    "create_sessionmaker",
    "get_runtime",
]
