"""The embedded worker runs the real tasks in-process, through the memory broker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

from conexapi.kit.context import get_request_id
from conexapi.kit.jobs import Job
from conexapi.settings import Settings
from workers import runtime
from workers.celery_app import create_celery
from workers.embedded import start_embedded_worker
from workers.sender import CelerySender
from workers.tasks import app as tasks_app
from workers.tasks import probe


@dataclass
class Seen:
    probe_id: str
    thread: str
    correlation_id: str | None
    loop_id: int | None = None
    state: str | None = None


class ProbeRecorder:
    """Records every probe the worker runs: what it saw at start and how it ended."""

    def __init__(self) -> None:
        self.seen: dict[str, Seen] = {}
        self.done = threading.Condition()

    def prerun(self, task: Task, args: tuple[Any, ...] = (), **_: Any) -> None:
        if task.name == "conexapi.probe":
            self.seen[args[0]] = Seen(args[0], threading.current_thread().name, get_request_id())

    def postrun(self, task: Task, args: tuple[Any, ...] = (), state: str = "", **_: Any) -> None:
        if task.name != "conexapi.probe" or args[0] not in self.seen:
            return
        current = runtime._runtime
        with self.done:
            item = self.seen[args[0]]
            item.loop_id = id(current.loop) if current is not None else None
            item.state = state
            self.done.notify_all()

    def wait_for(self, *probe_ids: str, timeout: float = 30.0) -> list[Seen]:
        def finished() -> bool:
            return all(p in self.seen and self.seen[p].state for p in probe_ids)

        with self.done:
            assert self.done.wait_for(finished, timeout), f"probes not run: {self.seen}"
        return [self.seen[p] for p in probe_ids]


@pytest.fixture
def recorder() -> Iterator[ProbeRecorder]:
    rec = ProbeRecorder()
    task_prerun.connect(rec.prerun, weak=False)
    task_postrun.connect(rec.postrun, weak=False)
    try:
        yield rec
    finally:
        task_prerun.disconnect(rec.prerun)
        task_postrun.disconnect(rec.postrun)


def _send(settings: Settings, *jobs: Job) -> None:
    """Send as the API does: a separate Celery app on the same in-process memory broker."""
    sender = CelerySender(create_celery(settings))
    sender._send_all(list(jobs))


async def test_embedded_worker_runs_probe_without_redis(
    settings_factory: Callable[..., Settings], recorder: ProbeRecorder
) -> None:
    settings = settings_factory()
    assert settings.redis_url is None
    assert str(tasks_app.conf.broker_url).startswith("memory://"), "test env sets a broker"
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    worker = start_embedded_worker(tasks_app, settings=settings)
    try:
        _send(
            settings,
            Job("conexapi.probe", (first,), "corr-first"),  # type: ignore[arg-type]
            Job("conexapi.probe", (second,), "corr-second"),  # type: ignore[arg-type]
        )
        one, two = recorder.wait_for(first, second)
    finally:
        worker.stop()
    assert not worker.running
    assert (one.state, two.state) == ("SUCCESS", "SUCCESS")
    assert one.thread == two.thread == "conexapi-embedded-worker"
    assert (one.correlation_id, two.correlation_id) == ("corr-first", "corr-second")
    assert one.loop_id is not None and one.loop_id == two.loop_id
    # The runtime (loop, engine) lived on the worker thread and was closed with it.
    assert runtime._runtime is None


async def test_embedded_probe_really_reaches_the_database(
    settings_factory: Callable[..., Settings], recorder: ProbeRecorder, tmp_path: Path
) -> None:
    unreachable = settings_factory(database_url=f"sqlite+aiosqlite:///{tmp_path}/no/dir/x.db")
    probe_id = uuid.uuid4().hex
    with start_embedded_worker(tasks_app, settings=unreachable):
        _send(unreachable, Job("conexapi.probe", (probe_id,), None))  # type: ignore[arg-type]
        (seen,) = recorder.wait_for(probe_id)
    assert seen.state == "FAILURE"


async def test_embedded_beat_sends_into_the_embedded_worker(
    settings_factory: Callable[..., Settings], recorder: ProbeRecorder, tmp_path: Path
) -> None:
    settings = settings_factory()
    probe_id = uuid.uuid4().hex
    app: Celery = create_celery(settings)
    # The same task code, registered on an app whose only periodic job is the probe.
    app.task(name="conexapi.probe", ignore_result=True)(probe.run)
    app.conf.beat_schedule = {
        "probe": {"task": "conexapi.probe", "schedule": 0.2, "args": [probe_id]}
    }
    with start_embedded_worker(
        app,
        settings=settings,
        beat=True,
        schedule_filename=str(tmp_path / "celerybeat-schedule"),
    ) as worker:
        (seen,) = recorder.wait_for(probe_id)
        assert worker.beat is not None
    assert seen.state == "SUCCESS"
    assert not worker.running and worker.beat is None


def test_embedded_worker_refuses_a_network_broker(
    settings_factory: Callable[..., Settings],
) -> None:
    app = create_celery(settings_factory(redis_url="redis://127.0.0.1:6379/0"))
    with pytest.raises(ValueError, match="memory://"):
        start_embedded_worker(app)
