"""A real ``conexapi worker`` process consumes jobs from Redis through the same code path."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from conexapi.kit.jobs import Job
from conexapi.serving import free_port
from conexapi.settings import Settings
from workers.celery_app import create_celery
from workers.sender import CelerySender, RedisSender

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CONEXAPI = Path(sys.executable).with_name("conexapi")


@pytest.fixture
def worker_process(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "CONEXAPI_ENV": "test",
        "CONEXAPI_REDIS_URL": redis_url,
        "CONEXAPI_DATABASE_URL": sqlite_url,
        "CONEXAPI_LOG_FORMAT": "json",
        # Other test sessions run workers on this host at the same time.
        "CONEXAPI_WORKER_METRICS_PORT": str(free_port()),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(CONEXAPI),
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--hostname",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


WAIT_SECONDS = 90.0


def _wait_for_keys(
    client: redis.Redis, keys: list[str], process: subprocess.Popen[bytes], log_path: Path
) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while len(found) < len(keys):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"probes seen: {sorted(found)}; worker log:\n{log_path.read_text(errors='replace')}"
            )
        for key in keys:
            raw = client.get(key)
            if raw is not None:
                found[key] = json.loads(raw)
        time.sleep(0.2)
    return found


@pytest.mark.parametrize("sender_kind", ["send_task", "direct LPUSH"])
async def test_worker_process_runs_probes_with_correlation_ids(
    worker_process: subprocess.Popen[bytes],
    redis_url: str,
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    sender_kind: str,
) -> None:
    from redis.asyncio import Redis

    settings = settings_factory(redis_url=redis_url)
    aclient = Redis.from_url(redis_url)
    sender: CelerySender | RedisSender = (
        CelerySender(create_celery(settings))
        if sender_kind == "send_task"
        else RedisSender(create_celery(settings), aclient)
    )
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    await sender.send(
        [
            Job("conexapi.probe", (first,), "corr-worker-1"),  # type: ignore[arg-type]
            Job("conexapi.probe", (second,), "corr-worker-2"),  # type: ignore[arg-type]
        ]
    )
    client = redis.Redis.from_url(redis_url)
    try:
        seen = _wait_for_keys(
            client,
            [f"conexapi:probe:{first}", f"conexapi:probe:{second}"],
            worker_process,
            tmp_path / "worker.log",
        )
    finally:
        client.close()
        await aclient.aclose()
    one, two = seen[f"conexapi:probe:{first}"], seen[f"conexapi:probe:{second}"]
    assert (one["correlation_id"], two["correlation_id"]) == ("corr-worker-1", "corr-worker-2")
    # Ran in a worker child, not here, and both tasks in that child shared one event loop.
    assert one["pid"] == two["pid"] != os.getpid()
    assert one["pid"] != worker_process.pid
    assert one["loop"] == two["loop"]

    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(timeout=60) == 0


async def test_twin_redis_sender_writes_what_send_task_writes(
    redis_url: str, settings_factory: Callable[..., Settings]
) -> None:
    """The direct sender's twin test, with ``send_task`` as the reference: same list, same
    envelope, same protocol-2 headers and body; only the ids differ. pyproject.toml pins
    the Celery and kombu versions this test has passed on."""
    from redis.asyncio import Redis

    from workers.sender import sender_for

    celery = create_celery(settings_factory(redis_url=redis_url))
    aclient = Redis.from_url(redis_url)
    try:
        assert isinstance(sender_for(celery, aclient), RedisSender)
        assert isinstance(sender_for(create_celery(settings_factory()), None), CelerySender)
        job = Job("conexapi.process_event", (7, 8), "corr-1")
        await CelerySender(celery).send([job])
        await RedisSender(celery, aclient).send([job, Job("conexapi.execute_run", (9,), None)])
        raw = await aclient.lrange("conexapi", 0, -1)
    finally:
        await aclient.aclose()
    # LPUSH puts the newest first; the worker pops from the other end.
    later, direct, celerys = (json.loads(r) for r in raw)
    assert json.loads(base64.b64decode(later["body"]))[0] == [9]
    assert later["headers"]["task"] == "conexapi.execute_run"

    for msg in (direct, celerys):
        msg["headers"]["origin"] = "x"
        for key in ("id", "root_id"):
            assert msg["headers"][key] == msg["properties"]["correlation_id"]
            msg["headers"][key] = "id"
        for key in ("correlation_id", "reply_to", "delivery_tag"):
            msg["properties"][key] = key
    assert direct == celerys
    assert json.loads(base64.b64decode(direct["body"])) == [
        [7, 8],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    assert direct["headers"]["conexapi_correlation_id"] == "corr-1"
