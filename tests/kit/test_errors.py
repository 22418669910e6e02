"""Every failure answers with the one envelope, the request id, and no stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pymysql
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from conexapi.kit.errors import Conflict
from conexapi.settings import Settings


class Item(BaseModel):
    name: str
    quantity: int


@pytest.fixture
async def app_settings(settings_factory: Any, sqlite_url: str, migrated_db: Any) -> Settings:
    await migrated_db(sqlite_url)
    settings: Settings = settings_factory(max_body_bytes=1024)
    return settings


@pytest.fixture
def error_app(app: FastAPI) -> FastAPI:
    """The real app plus test-only routes that fail in each way."""

    @app.post("/_test/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "quantity": item.quantity}

    @app.post("/_test/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/_test/conflict")
    async def conflict() -> None:
        raise Conflict("Already there.", details={"id": 7})

    @app.get("/_test/deadlock")
    async def deadlock() -> None:
        raise OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1213, "Deadlock"))

    @app.get("/_test/db-down")
    async def db_down() -> None:
        raise OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2003, "refused"))

    return app


@pytest.fixture
async def client(
    error_app: FastAPI, app_client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    yield app_client


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "error", "request_id"}
    assert body["status"] == "error"
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["request_id"] and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_success_is_not_wrapped(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/items", json={"name": "a", "quantity": 2})
    assert response.status_code == 200
    assert response.json() == {"name": "a", "quantity": 2}


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_test/items", content=b'{"name": "a",', headers={"content-type": "application/json"}
    )
    assert_envelope(response, 400, "malformed_json")


async def test_validation_error_lists_the_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/items", json={"name": "a", "quantity": "many"})
    body = assert_envelope(response, 422, "validation_error")
    locs = [e["loc"] for e in body["error"]["details"]["errors"]]
    assert ["body", "quantity"] in locs


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    body = assert_envelope(response, 404, "not_found")
    assert "/no/such/route" in body["error"]["message"]


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_app_error_keeps_code_and_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/_test/conflict")
    body = assert_envelope(response, 409, "conflict")
    assert body["error"] == {"code": "conflict", "message": "Already there.", "details": {"id": 7}}


async def test_declared_oversized_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/raw", content=b"x" * 1025)
    body = assert_envelope(response, 413, "payload_too_large")
    assert body["error"]["details"] == {"max_bytes": 1024}


async def test_body_at_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/raw", content=b"x" * 1024)
    assert response.status_code == 200
    assert response.json() == {"size": 1024}


async def _chunks(total: int, size: int = 300) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize("path", ["/_test/raw", "/_test/items"])
async def test_chunked_oversized_body(client: httpx.AsyncClient, path: str) -> None:
    request = client.build_request(
        "POST", path, content=_chunks(5000), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert_envelope(response, 413, "payload_too_large")


async def test_chunked_small_body_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/raw", content=_chunks(700))
    assert response.status_code == 200
    assert response.json() == {"size": 700}


async def test_invalid_content_length(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", "/_test/raw", content=b"abc")
    request.headers["content-length"] = "lots"
    response = await client.send(request)
    assert_envelope(response, 400, "bad_request")


async def test_unhandled_exception_is_an_opaque_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/_test/boom", headers={"X-Request-ID": "trace-me-500"})
    body = assert_envelope(response, 500, "internal_error")
    assert body["request_id"] == "trace-me-500"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


async def test_request_id_accepted_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"
    assert len(hostile.headers["x-request-id"]) == 32


async def test_a_deadlock_victim_is_told_to_retry(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_test/deadlock")
    assert_envelope(resp, 409, "concurrent_update")
    assert resp.headers["retry-after"] == "1"


async def test_database_down_is_503_not_500(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_test/db-down")
    body = assert_envelope(resp, 503, "database_unavailable")
    assert "refused" not in str(body)
