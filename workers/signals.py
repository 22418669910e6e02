"""Wire the per-process runtime and the correlation id into Celery's lifecycle."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from conexapi.kit.context import clean_request_id, reset_request_id, set_request_id
from conexapi.kit.logging import configure_logging
from conexapi.settings import get_settings
from workers.runtime import close_runtime, init_runtime
from workers.sender import CORRELATION_HEADER


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)


@worker_init.connect
def _preload(**_: Any) -> None:
    """Import what the tasks use once, in the parent, before it forks its children.

    Each child would otherwise import the sync, reconcile and connector modules (and scan
    the connector entry points) on its first task: CPU spent again in every child, and
    memory each keeps its own copy of instead of sharing the parent's pages.
    """
    import conexapi.connections.tokens
    import conexapi.reconcile.housekeeping
    import conexapi.reconcile.report
    import conexapi.sync.batch
    import conexapi.sync.context
    import conexapi.sync.runner
    import conexapi.sync.sweeper  # noqa: F401
    from connectors.registry import all_connectors

    all_connectors()  # loads every connector package


@worker_process_init.connect
def _init(**_: Any) -> None:
    init_runtime()


@worker_process_shutdown.connect
def _shutdown(**_: Any) -> None:
    close_runtime()


@worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    # The solo pool and the embedded worker run tasks in the worker's own process, where
    # worker_process_shutdown is never sent. A prefork parent holds no runtime: no-op.
    close_runtime()


def correlation_id_of(task: Task) -> str | None:
    """The enqueuer's correlation id; custom headers also land on the request itself."""
    headers = getattr(task.request, "headers", None) or {}
    value = headers.get(CORRELATION_HEADER) or getattr(task.request, CORRELATION_HEADER, None)
    return str(value) if value else None


#: Context tokens of the tasks running in this process, by task id.
_tokens: dict[str, object] = {}


@task_prerun.connect
def _bind(task: Task, task_id: str, **_: Any) -> None:
    rid = clean_request_id(correlation_id_of(task))
    _tokens[task_id] = set_request_id(rid)
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)


@task_postrun.connect
def _unbind(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        reset_request_id(token)
    structlog.contextvars.clear_contextvars()
