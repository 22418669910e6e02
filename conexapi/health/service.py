from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog
from sqlalchemy import text

from conexapi.kit.resources import Resources
from conexapi.migrate import charset_problem, current_revisions, head_revisions

log = structlog.get_logger(__name__)


def _failed(service: str, exc: Exception) -> dict[str, Any]:
    """What a failed check answers: a stable code and message, never the driver's text.

    ``/readyz`` needs no credentials, and error text from a driver can carry SQL, host
    names and schema details; those go to the log, where the operator looks next.
    """
    timed_out = isinstance(exc, TimeoutError)
    log.warning(
        "readiness_check_failed",
        check=service,
        error_type=type(exc).__name__,
        error=str(exc)[:1000],
    )
    return {
        "ok": False,
        "code": f"{service}_timeout" if timed_out else f"{service}_unavailable",
        "reason": (
            f"The {service} did not answer in time" if timed_out else f"The {service} check failed"
        )
        + "; the server log (readiness_check_failed) has the details.",
    }


class InProcessWorker(Protocol):
    """The worker and beat an API process runs itself when there is no Redis."""

    def problem(self) -> str | None: ...


async def readiness(
    res: Resources, worker: InProcessWorker | None = None
) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ok = True
    try:
        async with asyncio.timeout(3):
            async with res.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                current = await conn.run_sync(current_revisions)
                charset = await conn.run_sync(charset_problem)
        checks["database"] = {"ok": True}
        # A database that cannot store an emoji fails on the first one a buyer sends.
        checks["charset"] = {"ok": True} if charset is None else {"ok": False, "reason": charset}
        if charset is not None:
            ok = False
        heads = head_revisions()
        at_head = current == heads
        checks["migrations"] = {
            "ok": at_head,
            "current": sorted(current),
            "head": sorted(heads),
        }
        if not at_head:
            ok = False
            checks["migrations"]["reason"] = "run `conexapi migrate`"
    except Exception as exc:
        ok = False
        checks["database"] = _failed("database", exc)
    if res.redis is not None:
        try:
            async with asyncio.timeout(2):
                await res.redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:
            ok = False
            checks["redis"] = _failed("redis", exc)
    else:
        checks["redis"] = {"ok": True, "mode": "embedded (no Redis configured)"}
    if worker is not None:
        # Without it the API would accept notifications that nothing ever processes.
        problem = worker.problem()
        if problem is None:
            checks["worker"] = {"ok": True, "mode": "embedded (worker and beat in this process)"}
        else:
            ok = False
            checks["worker"] = {
                "ok": False,
                "reason": f"{problem}; restart the process (accepted notifications are "
                "kept and processed once a worker runs)",
            }
    return ok, checks
