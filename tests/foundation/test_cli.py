"""The ``conexapi`` processes start from the command line: migrate and beat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from conexapi.migrate import current_revisions, head_revisions

CONEXAPI = Path(sys.executable).with_name("conexapi")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update({"CONEXAPI_ENV": "test", **values})
    return env


@pytest.mark.slow
def test_migrate_command_upgrades_to_head(sqlite_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CONEXAPI), "migrate"],
        env=_env(CONEXAPI_DATABASE_URL=sqlite_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(sqlite_url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as conn:
            assert current_revisions(conn) == head_revisions()
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.redis
def test_beat_command_schedules_the_sweeper_on_redis(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [str(CONEXAPI), "beat", "--schedule", str(tmp_path / "celerybeat-schedule")],
        env=_env(
            CONEXAPI_DATABASE_URL=sqlite_url,
            CONEXAPI_REDIS_URL=redis_url,
            CONEXAPI_SWEEPER_INTERVAL_SECONDS="1",
        ),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        message = None
        while message is None and time.monotonic() < deadline and beat.poll() is None:
            message = client.lindex("conexapi", 0)  # the queue, as kombu keeps it in Redis
            time.sleep(0.2)
        assert message is not None, (tmp_path / "beat.log").read_text(errors="replace")
        assert json.loads(message)["headers"]["task"] == "conexapi.sweep"
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=30)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait()
        log.close()
        client.close()
