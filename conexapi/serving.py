"""Serving ASGI apps with uvicorn: ``api`` on its own, ``sandbox`` and ``demo`` several on one
event loop.

Every listening socket is bound before anything else starts. uvicorn binds only after the
application's startup, so a port already taken used to surface as a logged error followed
by the application's shutdown (which could hang), instead of a clear failure at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from conexapi.kit.http_server import GuardedConfig, HttpLimits
from conexapi.settings import Settings


class PortUnavailable(Exception):
    """A listening address could not be bound (taken, not allowed, no such address)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port


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


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), for uvicorn to serve on.

    Raises :class:`PortUnavailable` with the system's reason when the address is taken.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restarted server may bind while old connections sit in
        # TIME_WAIT (a port another socket listens on still fails).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortUnavailable(host, port, (exc.strerror or str(exc)).lower()) from None
    sock.set_inheritable(True)  # --workers children serve on it
    return sock


def bound_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def server_config(app: Any, settings: Settings | None, **kwargs: Any) -> GuardedConfig:
    """uvicorn's configuration with the slow-client deadlines and the connection cap
    (their defaults without ``settings``)."""
    kwargs.setdefault("log_config", None)
    kwargs.setdefault("access_log", False)
    # Forwarded headers are the app's business (CONEXAPI_TRUSTED_PROXIES), not uvicorn's:
    # uvicorn would also believe 127.0.0.1 (or FORWARDED_ALLOW_IPS) by default.
    kwargs.setdefault("proxy_headers", False)
    return GuardedConfig(app, limits=HttpLimits.from_settings(settings), **kwargs)


def run_api(config: uvicorn.Config, sock: socket.socket) -> bool:
    """Serve until a signal stops it, in this process or in ``config.workers`` children.

    Returns False when the application failed to start.
    """
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
        return True
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return server.started


async def start(
    name: str,
    app: ASGIApp,
    host: str,
    port: int,
    settings: Settings | None = None,
    *,
    sock: socket.socket | None = None,
) -> Served:
    """Serve ``app`` on ``sock`` (or on a socket bound to ``host:port`` here)."""
    if sock is None:
        sock = listen(host, port)
    port = bound_port(sock)
    config = server_config(app, settings, lifespan="on")
    server = uvicorn.Server(config)
    # The process owner (demo, sandbox command) handles signals, not each server.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"serve-{name}")
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError(f"{name} stopped during startup")
        await asyncio.sleep(0.02)
    return Served(name=name, server=server, task=task, url=f"http://{host}:{port}")


async def stop(served: Served) -> None:
    served.server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await served.task


@contextlib.asynccontextmanager
async def serving(
    apps: list[tuple[str, ASGIApp, str, socket.socket]], settings: Settings
) -> AsyncIterator[list[Served]]:
    """Serve each ``(name, app, host, bound socket)`` until the block ends."""
    started: list[Served] = []
    try:
        for name, app, host, sock in apps:
            started.append(await start(name, app, host, 0, settings, sock=sock))
        yield started
    finally:
        for served in reversed(started):
            await stop(served)
