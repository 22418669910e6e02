"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, no pipelining).

It is deliberately lighter than any HTTP client library so that, on a 2-core machine, the
server under test and not the generator is what saturates. Two modes:

- closed loop: ``connections`` clients send back to back for ``seconds``; gives the
  throughput the server sustains and its latency under saturation;
- open loop: requests are scheduled at a fixed ``rate``; latency is measured from each
  request's scheduled time (so a stalled server cannot hide its queueing delay).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    label: str
    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(int(q * len(data)), len(data) - 1)] * 1000

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    def summary(self) -> dict[str, float | int | str]:
        return {
            "label": self.label,
            "ok": self.ok,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50, 2),
            "p99_ms": round(self.p99, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
        }


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value.strip())
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def closed_loop(
    label: str,
    host: str,
    port: int,
    path: str,
    make_body: Callable[[int], bytes],
    connections: int,
    seconds: float,
) -> Result:
    result = Result(label)
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        conn = Conn(host, port)
        while time.perf_counter() < stop_at:
            raw = build_request(host, port, path, make_body(next(counter)))
            started = time.perf_counter()
            result.sent += 1
            try:
                status = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                conn.close()
                continue
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.ok += 1
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(connections)])
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(
    label: str,
    host: str,
    port: int,
    path: str,
    make_body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int = 64,
) -> Result:
    result = Result(label)
    total = int(rate * seconds)
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Conn(host, port))
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        raw = build_request(host, port, path, make_body(i))
        result.sent += 1
        try:
            status = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            conn.close()
            pool.put_nowait(conn)
            return
        pool.put_nowait(conn)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.ok += 1
            result.latencies.append(time.perf_counter() - scheduled)
        else:
            result.errors += 1

    await asyncio.gather(*[one(i) for i in range(total)])
    result.elapsed = time.perf_counter() - start
    return result
