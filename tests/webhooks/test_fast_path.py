"""What only the webhook fast path meets: a sender gone mid-body, repeated request ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from conexapi.db import create_engine, create_sessionmaker
from conexapi.models import WebhookEvent
from conexapi.settings import Settings
from tests.support.webhooks import APP_ID, SELLER, link_seller, note


@pytest.fixture
async def app_settings(settings_factory: Any, migrated_db: Any, sqlite_url: str) -> Settings:
    await migrated_db(sqlite_url)
    settings: Settings = settings_factory(connectors={"mercadolibre": {"client_id": APP_ID}})
    await link_seller(settings, str(SELLER))
    return settings


async def _call(app: FastAPI, headers: list[tuple[bytes, bytes]], messages: list[Any]) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/webhooks/mercadolibre",
        "raw_path": b"/webhooks/mercadolibre",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "root_path": "",
    }
    await app(scope, receive, send)
    return sent


async def _stored(settings: Settings) -> int:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookEvent))
    await engine.dispose()
    return int(count or 0)


async def test_a_sender_gone_mid_body_stores_nothing_and_gets_no_answer(
    app_client: Any, app: FastAPI, app_settings: Settings
) -> None:
    body = json.dumps(note()).encode()
    sent = await _call(
        app,
        [(b"content-type", b"application/json")],
        [{"type": "http.request", "body": body[:40], "more_body": True}],
    )
    assert sent == []
    assert await _stored(app_settings) == 0


async def test_the_first_request_id_of_repeated_headers_is_the_one(
    app_client: Any, app: FastAPI, app_settings: Settings
) -> None:
    body = json.dumps(note()).encode()
    sent = await _call(
        app,
        [(b"x-request-id", b"first-id"), (b"x-request-id", b"second-id")],
        [{"type": "http.request", "body": body, "more_body": False}],
    )
    start = sent[0]
    assert start["status"] == 200
    assert (b"x-request-id", b"first-id") in start["headers"]
    assert await _stored(app_settings) == 1
