"""Send jobs to Celery from async code (the API, the sweeper, tasks) without blocking the loop.

Two senders, one message format:

- :class:`RedisSender`, whenever the broker is Redis and nothing it does not reproduce
  (routes, key prefixes, priorities, another serializer or protocol) is configured:
  builds each message with Celery's own ``amqp.as_task_v2`` (protocol 2, the one Celery's
  workers read) and wraps it as kombu's Redis transport does, then pushes a whole batch
  with one ``LPUSH`` on the process's asyncio Redis client. Publishing through
  ``send_task`` costs about half a millisecond of CPU per message here (routing, signals,
  a thread hop and a blocking socket per message), which was a fifth of the webhook
  endpoint's CPU.
- :class:`CelerySender`, for any other broker (the in-memory one of the embedded mode)
  or configuration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import uuid
from typing import Any

from celery import Celery
from redis.asyncio import Redis

from conexapi.kit.jobs import Job, JobSender

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


class RedisSender:
    """Celery task messages straight onto the Redis list a worker reads, a batch per push.

    What kombu's Redis transport does for a message published to the default exchange
    with the queue's name as routing key and priority 0: the list named after the queue,
    the body base64-encoded JSON, a fresh ``delivery_tag`` for the worker's unacked
    bookkeeping. Its twin test, ``tests/workers/test_celery_worker.py::
    test_twin_redis_sender_writes_what_send_task_writes``, holds the result to
    ``send_task``'s (and real workers consume it), for the Celery and kombu versions
    pinned in pyproject.toml.
    """

    def __init__(self, app: Celery, redis: Redis) -> None:
        self.app = app
        self.redis = redis
        self.queue: str = app.conf.task_default_queue
        self.origin = f"{os.getpid()}@{socket.gethostname()}"

    def encode(self, job: Job) -> bytes:
        task_id = str(uuid.uuid4())
        message = self.app.amqp.as_task_v2(
            task_id,
            job.name,
            args=tuple(job.args),
            kwargs={},
            origin=self.origin,
            argsrepr=repr(list(job.args)),
            kwargsrepr="{}",
            # As send_task writes it: None leaves it to the task's own setting.
            ignore_result=None,  # type: ignore[arg-type]
        )
        headers: dict[str, Any] = dict(message.headers)
        headers[CORRELATION_HEADER] = job.correlation_id
        body = json.dumps(message.body).encode()
        return json.dumps(
            {
                "body": base64.b64encode(body).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": {
                    **message.properties,
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": "", "routing_key": self.queue},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        ).encode()

    async def send(self, jobs: list[Job]) -> None:
        if jobs:
            # LPUSH a b c: the worker's BRPOP takes a first, as for messages sent one by one.
            await self.redis.lpush(self.queue, *(self.encode(job) for job in jobs))


def sender_for(app: Celery, redis: Redis | None) -> JobSender:
    """The cheapest sender that speaks to ``app``'s broker."""
    direct = (
        redis is not None
        and str(app.conf.broker_url or "").startswith(("redis://", "rediss://"))
        # What RedisSender does not reproduce: routing, key prefixes, priorities.
        and not app.conf.task_routes
        and not (app.conf.broker_transport_options or {}).get("global_keyprefix")
        and app.conf.task_default_priority in (None, 0)
        and app.conf.task_serializer == "json"
        and app.conf.task_protocol == 2
    )
    return RedisSender(app, redis) if direct and redis is not None else CelerySender(app)
