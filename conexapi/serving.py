"""Several ASGI apps served by uvicorn on one event loop (``sandbox`` and ``demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class Served:
    name: str
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def start(name: str, app: ASGIApp, host: str, port: int) -> Served:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Forwarded headers are the app's business (CONEXAPI_TRUSTED_PROXIES), not uvicorn's.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # The process owner (demo, sandbox command) handles signals, not each server.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(), name=f"serve-{name}")
    while not server.started:
        if task.done():
            task.result()  # raises the startup error (e.g. the port is taken)
            raise RuntimeError(f"{name} stopped during startup")
        await asyncio.sleep(0.02)
    return Served(name=name, server=server, task=task, url=f"http://{host}:{port}")


async def stop(served: Served) -> None:
    served.server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await served.task


@contextlib.asynccontextmanager
async def serving(apps: list[tuple[str, ASGIApp, str, int]]) -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    try:
        for name, app, host, port in apps:
            started.append(await start(name, app, host, port))
        yield started
    finally:
        for served in reversed(started):
            await stop(served)
