"""Enqueue after commit, ids only.

A job queued while a transaction is open is held on the session and sent by the unit of
work after the commit succeeds (and dropped on rollback), so a worker never sees an id
whose row is not committed yet. Sending goes through a :class:`JobSender`: Celery in
production and in the embedded mode alike. A send that fails is logged and left to the
sweeper: the rows it would have processed are in the database and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.context import get_request_id

log = structlog.get_logger(__name__)

_KEY = "conexapi.jobs"


@dataclass(frozen=True)
class Job:
    name: str
    args: tuple[int, ...]
    correlation_id: str | None = None


class JobSender(Protocol):
    async def send(self, jobs: list[Job]) -> None: ...


@dataclass
class _State:
    sender: JobSender | None = None
    sent: list[Job] = field(default_factory=list)


_state = _State()


def set_sender(sender: JobSender | None) -> None:
    """Installed by the API lifespan and the worker runtime; None drops jobs (tests)."""
    _state.sender = sender


def has_sender() -> bool:
    return _state.sender is not None


def get_sender() -> JobSender | None:
    return _state.sender


def enqueue(session: AsyncSession, name: str, *ids: int) -> None:
    session.info.setdefault(_KEY, []).append(Job(name, tuple(ids), get_request_id()))


def discard(session: AsyncSession) -> None:
    session.info.pop(_KEY, None)


def pending(session: AsyncSession) -> list[Job]:
    return list(session.info.get(_KEY, []))


async def send_now(queued: list[Job]) -> bool:
    """Send jobs outside a unit of work (after a commit the caller made); False on failure."""
    if not queued or _state.sender is None:
        return False
    try:
        await _state.sender.send(queued)
    except Exception as exc:  # the broker is down: the sweeper finds the rows later
        log.warning("enqueue_failed", jobs=len(queued), error=str(exc))
        return False
    return True


async def flush(session: AsyncSession) -> None:
    await send_now(session.info.pop(_KEY, []))
