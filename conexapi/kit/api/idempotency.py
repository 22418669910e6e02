"""``Idempotency-Key`` for bulk requests: the same key and body get the same answer.

The key's row is inserted before the work and completed in the same transaction. A
concurrent duplicate blocks on the unique (owner, key) index until the first commits,
then finds the answer and replays it; on SQLite transactions are serialized anyway. The
same key with another body or path is refused (409), never silently replayed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.auth.principal import Principal
from conexapi.db import in_unit_of_work
from conexapi.kit.errors import Conflict
from conexapi.kit.resources import Resources
from conexapi.models import IdempotentRequest, utcnow

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Unique per logical request (e.g. a UUID). Sending it again with the same "
        "body returns the first answer and changes nothing.",
    ),
]

REPLAYED_HEADER = "Idempotent-Replayed"


def body_hash(body: Any) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class Claim:
    """This request's hold on its key; :meth:`done` stores the answer."""

    def __init__(self, row: IdempotentRequest) -> None:
        self.row = row

    def done(self, status_code: int, body: dict[str, Any]) -> None:
        self.row.status_code = status_code
        self.row.response = body


def _replay(row: IdempotentRequest, method: str, path: str, digest: str) -> JSONResponse:
    if row.method != method or row.path != path or row.request_hash != digest:
        raise Conflict(
            "This Idempotency-Key was used for a different request.",
            code="idempotency_key_reused",
        )
    if row.status_code is None:
        raise Conflict(
            "A request with this Idempotency-Key is still running.",
            code="idempotency_in_progress",
        )
    return JSONResponse(
        row.response or {}, status_code=row.status_code, headers={REPLAYED_HEADER: "true"}
    )


async def claim(
    session: AsyncSession,
    principal: Principal,
    key: str,
    request: Request,
    body: Any,
    ttl_seconds: int,
) -> Claim | JSONResponse:
    """A :class:`Claim` to do the work under, or the stored answer to send again."""
    owner = principal.ref
    # The merchant the request acts for (X-Merchant-Id) decides what it does, as its body
    # does: the same key with another merchant is another request. Hashed only when
    # named, so the answers stored for requests that name none still match.
    scoped = body if principal.acting_for is None else [principal.acting_for, body]
    method, path, digest = request.method, request.url.path[:255], body_hash(scoped)
    now = utcnow()
    where = (IdempotentRequest.owner == owner, IdempotentRequest.key == key)
    existing = await session.scalar(select(IdempotentRequest).where(*where).with_for_update())
    if existing is not None and existing.expires_at > now:
        return _replay(existing, method, path, digest)
    # Expired answers of this caller are forgotten (and this key's, if it was one).
    await session.execute(
        delete(IdempotentRequest).where(
            IdempotentRequest.owner == owner, IdempotentRequest.expires_at <= now
        )
    )
    row = IdempotentRequest(
        owner=owner,
        key=key,
        method=method,
        path=path,
        request_hash=digest,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A concurrent request with the same key committed first: its answer stands.
        if row in session:
            session.expunge(row)
        existing = await session.scalar(
            select(IdempotentRequest).where(*where).execution_options(populate_existing=True)
        )
        if existing is None:
            raise Conflict(
                "A request with this Idempotency-Key is still running.",
                code="idempotency_in_progress",
            ) from None
        return _replay(existing, method, path, digest)
    return Claim(row)


async def accepted_once(
    resources: Resources,
    principal: Principal,
    key: str,
    request: Request,
    body: BaseModel,
    work: Callable[[AsyncSession], Awaitable[BaseModel]],
) -> BaseModel | JSONResponse:
    """Do ``work`` once per key and answer 202 with its result; a repeat gets that answer.

    The claim, the work and the stored answer share one unit of work, run again from the
    start if MariaDB picks it as a deadlock victim: concurrent repeats of one request
    contend for the same key row and the same records.
    """

    async def attempt(session: AsyncSession) -> BaseModel | JSONResponse:
        claim_ = await claim(
            session,
            principal,
            key,
            request,
            body.model_dump(mode="json"),
            resources.settings.idempotency_ttl_seconds,
        )
        if isinstance(claim_, JSONResponse):
            return claim_
        result = await work(session)
        claim_.done(202, result.model_dump(mode="json"))
        return result

    return await in_unit_of_work(resources.sessionmaker, attempt)
