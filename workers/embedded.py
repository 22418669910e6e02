"""A Celery worker (and optionally beat) inside the current process: ``conexapi api`` and
``conexapi demo`` without Redis.

The embedded mode has no Redis: the Celery app uses kombu's ``memory://`` transport, whose
queues are shared by every connection in the process, so jobs the API sends are consumed
by a :class:`~celery.worker.WorkController` running in a background thread, with the solo
pool, through exactly the same task code as a ``conexapi worker`` process. Nothing here
installs signal handlers (only the main thread may), and :meth:`EmbeddedWorker.stop` ends
the worker warmly: a task in progress finishes before the thread exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import structlog
from celery import Celery
from celery.beat import EmbeddedService
from celery.worker import WorkController
from celery.worker import state as worker_state

from conexapi.settings import Settings
from workers.runtime import close_runtime, configure_runtime

log = structlog.get_logger(__name__)


class _Controller(WorkController):
    """A WorkController that tells when its consumer is ready to take jobs."""

    def __init__(self, app: Celery, ready: threading.Event, **kwargs: Any) -> None:
        self.ready = ready
        super().__init__(app=app, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


@dataclass
class EmbeddedWorker:
    """The handle :func:`start_embedded_worker` returns; ``stop()`` it (or use ``with``)."""

    app: Celery
    thread: threading.Thread
    controller: WorkController | None = None
    beat: Any = None
    errors: list[BaseException] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def problem(self) -> str | None:
        """Why jobs sent here are no longer run (for ``/readyz``), or None while they are."""
        if not self.thread.is_alive():
            cause = f" ({type(self.errors[-1]).__name__})" if self.errors else ""
            return f"the embedded worker has stopped{cause}"
        if self.beat is not None and not self.beat.is_alive():
            return "the embedded beat (sweeper, retries, reconciliation) has stopped"
        return None

    def stop(self, timeout: float = 15.0) -> None:
        if self.beat is not None:
            self.beat.stop()
            self.beat = None
        if self.thread.is_alive():
            # Celery's own way to stop a worker from outside its thread: the consumer loop
            # checks this flag between messages and shuts down warmly in its own thread.
            worker_state.should_stop = 0  # type: ignore[assignment]  # stubs say None only
            try:
                self.thread.join(timeout)
            finally:
                worker_state.should_stop = None
            if self.thread.is_alive():
                raise RuntimeError(f"embedded worker did not stop within {timeout} s")
        configure_runtime(None)
        log.info("embedded_worker_stopped")

    def __enter__(self) -> EmbeddedWorker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_embedded_worker(
    app: Celery,
    *,
    settings: Settings | None = None,
    beat: bool = False,
    schedule_filename: str = "celerybeat-schedule",
    ready_timeout: float = 15.0,
) -> EmbeddedWorker:
    """Start a solo-pool worker for ``app`` in a daemon thread; return once it consumes.

    ``app`` must use the ``memory://`` broker (``create_celery`` picks it when no Redis is
    configured): a worker thread polling Redis would only duplicate ``conexapi worker``.
    ``settings`` become the tasks' runtime settings (default: the environment's). With
    ``beat`` the periodic jobs run too, in a thread, sending into the same memory broker.
    """
    broker = str(app.conf.broker_url or "")
    if not broker.startswith("memory://"):
        raise ValueError("the embedded worker needs a Celery app with the memory:// broker")
    if settings is not None:
        configure_runtime(settings)
    # The product's tasks are shared: an app finalized after their module is imported has
    # them all (a worker process imports it at startup, too late for an app built here).
    import workers.tasks  # noqa: F401

    app.finalize()
    ready = threading.Event()
    errors: list[BaseException] = []

    def _run() -> None:
        app.set_current()
        try:
            # Built on this thread: the solo pool sends worker_process_init from its
            # constructor, and the tasks' event loop, engine and clients belong here.
            handle.controller = _Controller(
                app,
                ready,
                hostname=f"embedded-{os.getpid()}@{socket.gethostname()}",
                pool="solo",
                concurrency=1,
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
            )
            handle.controller.start()
        except BaseException as exc:  # kept for stop() and the ready check, and re-raised
            errors.append(exc)
            raise
        finally:
            close_runtime()

    thread = threading.Thread(target=_run, name="conexapi-embedded-worker", daemon=True)
    handle = EmbeddedWorker(app=app, thread=thread, errors=errors)
    thread.start()
    if not ready.wait(ready_timeout):
        with contextlib.suppress(RuntimeError):
            handle.stop()
        raise RuntimeError(f"embedded worker not ready within {ready_timeout} s: {errors!r}")
    if beat:
        handle.beat = EmbeddedService(app, thread=True, schedule_filename=schedule_filename)
        handle.beat.start()
    log.info("embedded_worker_started", beat=beat)
    return handle


__all__ = ["EmbeddedWorker", "start_embedded_worker"]
