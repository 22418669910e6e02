"""Enqueue after commit, ids only.

A job queued during a unit of work is held in that unit of work's buffer (a context
variable, so nested units of work and concurrent requests each keep their own) and sent
after its commit succeeds (dropped on rollback), so a worker never sees an id whose row
is not committed yet. Sending goes through a :class:`JobSender`: Celery in
production and in the embedded mode alike. A send that fails is logged and left to the
sweeper: the rows it would have processed are in the database and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import structlog

from conexapi.kit.context import get_request_id

log = structlog.get_logger(__name__)


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


_state = _State()


def set_sender(sender: JobSender | None) -> None:
    """Installed by the API lifespan and the worker runtime; None drops jobs (tests)."""
    _state.sender = sender


def has_sender() -> bool:
    return _state.sender is not None


def get_sender() -> JobSender | None:
    return _state.sender


#: The jobs of the innermost open unit of work; None outside one.
_buffer: ContextVar[list[Job] | None] = ContextVar("conexapi_jobs", default=None)


@contextmanager
def buffered() -> Iterator[list[Job]]:
    """A fresh buffer for one unit of work, which sends or drops what it holds.

    The list is shared by reference, so a job queued from a task copied from this context
    (a dependency and its endpoint, a middleware's task) still lands in it.
    """
    queued: list[Job] = []
    token = _buffer.set(queued)
    try:
        yield queued
    finally:
        _buffer.reset(token)


def enqueue(name: str, *ids: int) -> None:
    """Queue a job for after the commit of the unit of work in progress."""
    queued = _buffer.get()
    if queued is None:
        # No commit will ever send it: say so instead of holding it for a later unit of work.
        log.warning("job_outside_unit_of_work", job=name)
        return
    queued.append(Job(name, tuple(ids), get_request_id()))


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
