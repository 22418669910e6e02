from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from conexapi.kit.resources import Resources
from conexapi.migrate import charset_problem, current_revisions, head_revisions


async def readiness(res: Resources) -> tuple[bool, dict[str, Any]]:
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
        checks["database"] = {"ok": False, "reason": type(exc).__name__ + ": " + str(exc)[:200]}
    if res.redis is not None:
        try:
            async with asyncio.timeout(2):
                await res.redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:
            ok = False
            checks["redis"] = {"ok": False, "reason": type(exc).__name__ + ": " + str(exc)[:200]}
    else:
        checks["redis"] = {"ok": True, "mode": "embedded (no Redis configured)"}
    return ok, checks
