"""Correlation ids: accepted or made per request, bound into logs, carried into jobs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from conexapi.deps import SessionDep
from conexapi.kit import jobs
from conexapi.kit.logging import configure_logging


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Production logging (JSON), its handler writing to a buffer; returns a line reader."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", json=True)
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        lines = buffer.getvalue().splitlines()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in lines if line]

    try:
        yield read
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
def traced_app(app: FastAPI) -> FastAPI:
    @app.post("/_test/work")
    async def work(session: SessionDep) -> dict[str, str]:
        structlog.get_logger("test").info("doing_work", api_key="sk-live-123")
        jobs.enqueue("conexapi.test_job", 42)
        return {"ok": "yes"}

    return app


async def test_request_id_is_bound_into_logs(
    traced_app: FastAPI,
    app_client: httpx.AsyncClient,
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    json_logs()  # drop what the startup logged
    response = await app_client.post("/_test/work", headers={"X-Request-ID": "req-logs-1"})
    assert response.status_code == 200
    output = json_logs()
    lines = [line for line in output if line.get("event") == "doing_work"]
    assert len(lines) == 1, output
    assert lines[0]["request_id"] == "req-logs-1"
    assert lines[0]["level"] == "info"
    # Secrets never reach the output.
    assert lines[0]["api_key"] == "[redacted]"


async def test_request_id_travels_into_enqueued_jobs(
    traced_app: FastAPI, app_client: httpx.AsyncClient, sent_jobs: list[jobs.Job]
) -> None:
    await app_client.post("/_test/work", headers={"X-Request-ID": "req-jobs-1"})
    response = await app_client.post("/_test/work")
    assert sent_jobs == [
        jobs.Job("conexapi.test_job", (42,), "req-jobs-1"),
        jobs.Job("conexapi.test_job", (42,), response.headers["x-request-id"]),
    ]


async def test_failed_request_sends_no_job(
    app: FastAPI, app_client: httpx.AsyncClient, sent_jobs: list[jobs.Job]
) -> None:
    @app.post("/_test/fail")
    async def fail(session: SessionDep) -> None:
        jobs.enqueue("conexapi.test_job", 1)
        raise RuntimeError("after enqueue")

    response = await app_client.post("/_test/fail")
    assert response.status_code == 500
    assert sent_jobs == []


@pytest.mark.parametrize("as_json", [True, False])
def test_tracebacks_are_redacted_too(as_json: bool) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", json=as_json)
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        try:
            raise RuntimeError("refresh failed for Bearer APP_USR-1234-5678-abcdef")
        except RuntimeError:
            structlog.get_logger("test").exception("refresh_failed")
            logging.getLogger("plain").exception("stdlib too")
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    out = buffer.getvalue()
    assert "RuntimeError" in out  # the traceback is there...
    assert "APP_USR-1234" not in out  # ...without the token
    assert "[redacted]" in out
