"""The correlation id of the current request or job, carried in a context variable."""

from __future__ import annotations

import itertools
import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_PREFIX = uuid.uuid4().hex[:12]
_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique, not secret: a per-process random prefix and a counter (no syscall)."""
    return f"{_PREFIX}{next(_counter):020x}"


def clean_request_id(value: str | None) -> str:
    """Accept a caller's id when it is short and plain, else make a new one."""
    if value and _VALID.match(value):
        return value
    return new_request_id()


def get_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> object:
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


# Request ids the upstream services gave the calls of the current run (``x-request-id``).
_upstream_ids: ContextVar[list[str] | None] = ContextVar("upstream_ids", default=None)


def collect_upstream_ids() -> list[str]:
    """Start collecting for the current task; returns the list that fills up."""
    ids: list[str] = []
    _upstream_ids.set(ids)
    return ids


def note_upstream_id(value: str) -> None:
    ids = _upstream_ids.get()
    if ids is not None and len(ids) < 50:
        ids.append(value)
