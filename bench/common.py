"""Processes and databases the benchmarks start and clean up."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pymysql
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
MARIADB = os.environ.get(
    "CONEXAPI_BENCH_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/conexapi_bench"
)
REDIS = os.environ.get("CONEXAPI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_database(url: str = MARIADB) -> str:
    parsed = make_url(url)
    conn = pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
        cur.execute(
            f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    conn.close()
    return url


def flush_redis(url: str = REDIS) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(
        {
            "CONEXAPI_ENV": "production",
            "CONEXAPI_SECRET_KEY": "bench-" + "x" * 40,
            "CONEXAPI_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CONEXAPI_LOG_LEVEL": "WARNING",
            "CONEXAPI_DATABASE_URL": MARIADB,
            "CONEXAPI_REDIS_URL": REDIS,
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def process(
    args: list[str],
    env: dict[str, str],
    log: Path,
    ready_url: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if ready_url:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(ready_url, timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not start; see {log}")
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that have been waited for."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks = os.sysconf("SC_CLK_TCK")
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return out
    for k in kids:
        out.append(int(k))
        out.extend(children(int(k)))
    return out


PYTHON = sys.executable
