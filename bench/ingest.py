"""Webhook ingest: ConexAPI's endpoint on MariaDB + Redis against a bare FastAPI endpoint.

Both run as one uvicorn worker in their own process; this process generates the load.
ConexAPI verifies the notification, commits it to the inbox (group commit), answers 200
and enqueues the job to Redis; the baseline only parses the same body. After the run the
inbox is counted: every 200 must be a committed row.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymysql
from sqlalchemy.engine import make_url

from bench.common import (
    MARIADB,
    PYTHON,
    flush_redis,
    free_port,
    fresh_database,
    process,
    production_env,
)
from bench.loadgen import Result, closed_loop, open_loop

APP_ID = "5503910054141466"
SELLER = 468424240
PATH = "/webhooks/mercadolibre"


def body(i: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "_id": uuid.uuid4().hex,
            "resource": f"/orders/{2000000000000000 + i}",
            "user_id": SELLER,
            "topic": "orders_v2",
            "application_id": int(APP_ID),
            "attempts": 1,
            "sent": now,
            "received": now,
        }
    ).encode()


def _sql(statements: list[str]) -> list[Any]:
    parsed = make_url(MARIADB)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        autocommit=True,
    )
    out = []
    with conn.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)
            out.append(cur.fetchall())
    conn.close()
    return out


def prepare() -> None:
    from conexapi.migrate import upgrade

    fresh_database()
    flush_redis()
    upgrade(MARIADB)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    _sql(
        [
            "INSERT INTO merchants (id, name, slug, created_at, updated_at) "
            f"VALUES (1, 'Bench', 'bench', '{now}', '{now}')",
            "INSERT INTO connections (id, merchant_id, connector, external_account_id, "
            "display_name, status, version, created_at, updated_at) VALUES "
            f"(1, 1, 'mercadolibre', '{SELLER}', 'bench', 'active', 1, '{now}', '{now}')",
        ]
    )


async def measure(label: str, port: int, seconds: float, rate: float) -> tuple[Result, Result]:
    await closed_loop(label, "127.0.0.1", port, PATH, body, 8, 1.5)  # warm up
    sat = await closed_loop(label, "127.0.0.1", port, PATH, body, 32, seconds)
    paced = await open_loop(label, "127.0.0.1", port, PATH, body, rate, seconds)
    return sat, paced


def run(seconds: float = 10.0, rate: float = 300.0) -> dict[str, Any]:
    prepare()
    logs = Path(tempfile.mkdtemp(prefix="conexapi-bench-"))
    base_port, app_port = free_port(), free_port()
    uvicorn_args = ["--log-level", "warning", "--no-access-log", "--workers", "1"]
    env = production_env(CONEXAPI_MERCADOLIBRE_CLIENT_ID=APP_ID)
    with process(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(base_port),
            *uvicorn_args,
        ],
        env,
        logs / "baseline.log",
        ready_url=f"http://127.0.0.1:{base_port}/docs",
    ):
        base_sat, base_paced = asyncio.run(measure("bare FastAPI", base_port, seconds, rate))
    with process(
        [PYTHON, "-m", "conexapi.cli", "api", "--port", str(app_port)],
        env,
        logs / "conexapi.log",
        ready_url=f"http://127.0.0.1:{app_port}/healthz",
    ):
        app_sat, app_paced = asyncio.run(measure("ConexAPI", app_port, seconds, rate))
    (rows,) = _sql(["SELECT COUNT(*), SUM(status = 'queued') FROM webhook_events"])
    stored, queued = int(rows[0][0]), int(rows[0][1] or 0)
    accepted = app_sat.ok + app_paced.ok
    report = {
        "seconds": seconds,
        "offered_rate": rate,
        "saturated": {
            "baseline": base_sat.summary(),
            "conexapi": app_sat.summary(),
            "ratio": round(app_sat.rps / base_sat.rps, 2) if base_sat.rps else 0,
        },
        "paced": {"baseline": base_paced.summary(), "conexapi": app_paced.summary()},
        "inbox_rows": stored,
        "inbox_rows_queued": queued,
        "accepted_measured": accepted,
        "logs": str(logs),
    }
    return report


def print_report(r: dict[str, Any]) -> None:
    s, p = r["saturated"], r["paced"]
    print(
        f"\nWebhook ingest — {r['seconds']:.0f} s per phase, 1 uvicorn worker each, MariaDB + Redis"
    )
    print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, key in (("bare FastAPI (baseline)", "baseline"), ("ConexAPI webhook", "conexapi")):
        row = s[key]
        print(
            f"{name + ', saturated':28}{row['rps']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}"
            f"{row['errors']:>8}"
        )
    print(f"{'ratio ConexAPI / baseline':28}{s['ratio']:>10}")
    rate = f"{r['offered_rate']:.0f}/s offered"
    for name, key in (("bare FastAPI", "baseline"), ("ConexAPI webhook", "conexapi")):
        row = p[key]
        label = f"{name}, {rate}"
        print(f"{label:28}{row['rps']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}{row['errors']:>8}")
    print(
        f"inbox rows committed: {r['inbox_rows']} ({r['inbox_rows_queued']} queued to Redis); "
        f"200s answered in the measured phases: {s['conexapi']['ok'] + p['conexapi']['ok']}"
    )
