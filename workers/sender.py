"""Send jobs to Celery from async code (the API, the sweeper) without blocking the loop."""

from __future__ import annotations

import asyncio

from celery import Celery

from conexapi.kit.jobs import Job

#: Message header carrying the correlation id of the request or job that enqueued this one.
#: Not ``correlation_id``: Celery uses that name for the task id.
CORRELATION_HEADER = "conexapi_correlation_id"


class CelerySender:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def _send_all(self, jobs: list[Job]) -> None:
        with self.app.producer_or_acquire() as producer:
            for job in jobs:
                self.app.send_task(
                    job.name,
                    args=list(job.args),
                    headers={CORRELATION_HEADER: job.correlation_id},
                    producer=producer,
                )

    async def send(self, jobs: list[Job]) -> None:
        await asyncio.to_thread(self._send_all, jobs)
