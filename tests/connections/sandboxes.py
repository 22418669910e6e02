"""Sandboxes served by uvicorn on a free localhost port, from a thread with its own event
loop, so that tests on any loop, and other processes, reach them over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp

from conexapi import serving


@contextmanager
def served(name: str, app: ASGIApp) -> Iterator[str]:
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop

        async def main() -> None:
            try:
                box["served"] = await serving.start(name, app, "127.0.0.1", serving.free_port())
            except BaseException as exc:
                box["error"] = exc
                ready.set()
                raise
            ready.set()
            await box["served"].task

        try:
            loop.run_until_complete(main())
        except BaseException:  # reported through box["error"] when it happens at startup
            pass
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"sandbox-{name}", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"sandbox {name} did not start")
    if "error" in box:
        raise box["error"]
    try:
        yield box["served"].url
    finally:
        box["served"].server.should_exit = True
        thread.join(10)


def admin(url: str, method: str, path: str, **kwargs: Any) -> Any:
    """A call to a sandbox's admin API; raises on an error answer."""
    response = httpx.request(method, url + path, timeout=10, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None
