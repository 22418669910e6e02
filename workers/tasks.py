"""Thin task wrappers: open the process runtime, call a service, nothing else."""

from __future__ import annotations

import json
import os

from sqlalchemy import text

from conexapi.kit.context import get_request_id
from conexapi.kit.resources import Resources
from workers import signals  # noqa: F401  (connects the lifecycle signals)
from workers.celery_app import app
from workers.runtime import get_runtime


@app.task(name="conexapi.probe", ignore_result=True)
def probe(probe_id: str) -> None:
    """A round trip through the worker: database, Redis and the per-process loop.

    Used by tests and operators to prove that a worker process consumes the queue and
    reaches its services; it writes what it saw under ``conexapi:probe:{id}`` in Redis.
    """

    async def _run(res: Resources) -> None:
        async with res.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if res.redis is not None:
            await res.redis.set(
                f"conexapi:probe:{probe_id}",
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "loop": id(get_runtime().loop),
                        "correlation_id": get_request_id(),
                    }
                ),
                ex=600,
            )

    get_runtime().run(_run)
