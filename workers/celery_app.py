"""The Celery application: Redis broker in production, in-memory broker when embedded.

Delivery is at-least-once: ``acks_late`` with ``reject_on_worker_lost`` puts a job back on
the queue when the worker dies mid-task, and prefetch 1 keeps one job per child in
flight. Every task must therefore be idempotent, and is: run state lives in the database.
No countdown may exceed the visibility timeout; long back-offs live in the database
(``order_syncs.next_attempt_at``) and the sweeper picks them up.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from conexapi.kit import tasks
from conexapi.settings import Settings, get_settings

QUEUE = "conexapi"


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "sweeper": {
            "task": tasks.SWEEP,
            "schedule": settings.sweeper_interval_seconds,
            "options": {"expires": settings.sweeper_interval_seconds},
        },
        "reconcile": {
            "task": tasks.RECONCILE,
            "schedule": settings.reconcile_interval_seconds,
            "options": {"expires": settings.reconcile_interval_seconds},
        },
        "reconciliation-reports": {
            "task": tasks.RECONCILIATION_REPORTS,
            "schedule": settings.report_interval_seconds,
            "options": {"expires": settings.report_interval_seconds},
        },
        "token-refresh": {
            "task": tasks.REFRESH_TOKENS,
            "schedule": settings.token_refresh_interval_seconds,
            "options": {"expires": settings.token_refresh_interval_seconds},
        },
        "inbox-prune": {
            "task": tasks.PRUNE_INBOX,
            "schedule": settings.prune_interval_seconds,
            "options": {"expires": settings.prune_interval_seconds},
        },
    }


def create_celery(settings: Settings) -> Celery:
    broker = settings.redis_url or "memory://localhost/"
    app = Celery("conexapi", broker=broker, include=["workers.tasks"])
    transport_options: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.redis_url:
        transport_options.update(socket_connect_timeout=2, socket_timeout=5)
    else:
        transport_options["polling_interval"] = 0.05
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_publish_retry=False,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        worker_hijack_root_logger=False,
        worker_concurrency=settings.worker_concurrency,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename="celerybeat-schedule",
        # Two beats started by mistake still send each tick once (see workers/beat.py).
        beat_scheduler="workers.beat:SingleBeatScheduler",
    )
    return app


app = create_celery(get_settings())
