"""One beat: two ``conexapi beat`` processes on one Redis send each job once per tick."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis

from workers.beat import TICK_HEADER

CONEXAPI = Path(sys.executable).with_name("conexapi")
INTERVAL = 1.0
JOBS = {
    "conexapi.sweep",
    "conexapi.reconcile",
    "conexapi.reconciliation_reports",
    "conexapi.refresh_tokens",
    "conexapi.prune_inbox",
}

pytestmark = [pytest.mark.slow]


def _beat(tmp_path: Path, name: str, redis_url: str, sqlite_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(
        {
            "CONEXAPI_ENV": "test",
            "CONEXAPI_DATABASE_URL": sqlite_url,
            "CONEXAPI_REDIS_URL": redis_url,
            "CONEXAPI_LOG_LEVEL": "INFO",
            **{
                f"CONEXAPI_{setting}": str(INTERVAL)
                for setting in (
                    "SWEEPER_INTERVAL_SECONDS",
                    "RECONCILE_INTERVAL_SECONDS",
                    "REPORT_INTERVAL_SECONDS",
                    "TOKEN_REFRESH_INTERVAL_SECONDS",
                    "PRUNE_INTERVAL_SECONDS",
                )
            },
        }
    )
    return subprocess.Popen(
        [str(CONEXAPI), "beat", "--schedule", str(tmp_path / f"{name}-schedule")],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _sent(client: redis.Redis) -> list[dict[str, Any]]:
    """Every message beat put on the queue (nobody consumes it in this test)."""
    return [json.loads(raw)["headers"] for raw in client.lrange("conexapi", 0, -1)]


def _wait_for(check: Any, seconds: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            text = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs.glob("*.log"))
            raise AssertionError(f"timed out waiting for {what}\n{text}")
        time.sleep(0.1)


def test_two_beats_send_each_job_once_per_tick_and_one_carries_on_alone(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    first = _beat(tmp_path, "first", redis_url, sqlite_url)
    second = _beat(tmp_path, "second", redis_url, sqlite_url)
    try:
        # Both beats up: each has logged that it started.
        _wait_for(
            lambda: all(
                b"beat: Starting" in (tmp_path / f"{n}.log").read_bytes()
                for n in ("first", "second")
            ),
            120,
            "both beats to start",
            tmp_path,
        )
        # Both running together for a while: every job sent three more times since both
        # were up (a count of ticks, not a sleep that a loaded machine might not honour).
        started = Counter(h["task"] for h in _sent(client))

        def three_more_each() -> bool:
            now = Counter(h["task"] for h in _sent(client))
            return all(now[job] >= started[job] + 3 for job in JOBS)

        _wait_for(three_more_each, 120, "ticks with both beats up", tmp_path)
        assert first.poll() is None and second.poll() is None
        origins_before = {h["origin"] for h in _sent(client)}
        _stop(first)
        stopped_at = time.time()

        def carried_on() -> bool:
            late = {h["task"] for h in _sent(client) if h[TICK_HEADER] > stopped_at + INTERVAL}
            return late == JOBS

        _wait_for(
            carried_on,
            120,
            "the second beat to carry on",
            tmp_path,
        )
    finally:
        _stop(first)
        _stop(second)
    sent = _sent(client)
    client.close()

    ticks: dict[str, list[float]] = defaultdict(list)
    for headers in sent:
        ticks[headers["task"]].append(float(headers[TICK_HEADER]))
    assert set(ticks) == JOBS
    for job, stamps in ticks.items():
        stamps.sort()
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # Never two sends for one tick: consecutive sends of a job are an interval apart.
        assert min(gaps) >= 0.75 * INTERVAL, (job, gaps)
        assert len(stamps) >= 4, (job, stamps)
    # The ticks came from beat processes, and after the first stopped, from the second.
    assert all(h["origin"].startswith("gen") for h in sent)
    late = {h["origin"] for h in sent if float(h[TICK_HEADER]) > stopped_at + INTERVAL}
    assert len(late) == 1 and late <= {h["origin"] for h in sent}
    assert origins_before  # sends before the stop, from one beat or both
