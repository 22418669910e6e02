"""``POST /webhooks/mercadolibre``: what Mercado Libre gets back, and what the inbox keeps.

The webhook fast path's twin test: every test runs against :class:`WebhookFastPath` and
against the plain FastAPI route (the reference), which must agree."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conexapi.db import create_engine, create_sessionmaker
from conexapi.kit import jobs
from conexapi.kit.jsondepth import MAX_DEPTH
from conexapi.kit.tasks import PROCESS_EVENT
from conexapi.models import EventStatus, WebhookEvent
from conexapi.settings import Settings
from tests.support.webhooks import APP_ID, SELLER, link_seller, note


@pytest.fixture
async def app_settings(
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., Settings],
    migrated_db: Any,
    sqlite_url: str,
) -> Settings:
    """Body limit 4096 bytes, or ``request.param`` (``indirect`` parametrization)."""
    await migrated_db(sqlite_url)
    max_body_bytes = getattr(request, "param", 4096)
    settings = settings_factory(
        connectors={"mercadolibre": {"client_id": APP_ID}}, max_body_bytes=max_body_bytes
    )
    await link_seller(settings, str(SELLER))
    return settings


@pytest.fixture(autouse=True, params=["fast path", "FastAPI route"])
def served_by(request: pytest.FixtureRequest, app: Any) -> str:
    """The twin: every test here runs against both ways the endpoint is served."""
    if request.param == "FastAPI route":
        app.front = None
    return str(request.param)


def nested(levels: int) -> Any:
    """A value nesting ``levels`` arrays and objects (alternating), innermost ``1``."""
    value: Any = 1
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


async def events(settings: Settings) -> list[WebhookEvent]:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        rows = list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))
    await engine.dispose()
    return rows


def queued_ids(sent: list[jobs.Job]) -> list[int]:
    return [event_id for j in sent if j.name == PROCESS_EVENT for event_id in j.args]


async def wait_for_jobs(sent: list[jobs.Job], count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while len(queued_ids(sent)) < count:
        assert time.monotonic() < deadline, f"{count} event(s) never queued; sent: {sent}"
        await asyncio.sleep(0.02)


async def queue_marker(client: httpx.AsyncClient, sent: list[jobs.Job]) -> int:
    """A fresh notification, waited for until its job is sent. Jobs leave in the order their
    events were committed (one outbox, one dispatcher), so once the marker's is out, any job
    of an earlier request would be out too: a check for what was NOT sent can follow."""
    resp = await client.post(
        "/webhooks/mercadolibre",
        json=note(_id="marker", resource="/orders/2000009999999999"),
    )
    assert resp.status_code == 200 and resp.json()["event_status"] == "received"
    marker: int = resp.json()["event_id"]
    deadline = time.monotonic() + 60
    while marker not in queued_ids(sent):
        assert time.monotonic() < deadline, f"the marker was never queued; sent: {sent}"
        await asyncio.sleep(0.02)
    return marker


async def test_a_notification_is_committed_then_answered_200_then_queued(
    app_client: httpx.AsyncClient, app_settings: Settings, sent_jobs: list[jobs.Job]
) -> None:
    resp = await app_client.post(
        "/webhooks/mercadolibre", json=note(), headers={"X-Request-ID": "ml-delivery-1"}
    )
    assert resp.status_code == 200
    ack = resp.json()
    assert ack["duplicate"] is False and ack["event_status"] == "received"
    [event] = await events(app_settings)
    assert event.id == ack["event_id"]
    assert event.order_id == "2000003508419013"
    assert event.payload == note() | {
        "sent": event.payload["sent"],
        "received": event.payload["received"],
    }
    assert event.correlation_id == "ml-delivery-1"
    await wait_for_jobs(sent_jobs, 1)
    [job] = [j for j in sent_jobs if j.name == PROCESS_EVENT]
    assert job.args == (event.id,)
    assert job.correlation_id == "ml-delivery-1"


async def test_duplicates_are_counted_not_queued(
    app_client: httpx.AsyncClient, app_settings: Settings, sent_jobs: list[jobs.Job]
) -> None:
    body = json.dumps(note(_id="abc123"))
    answers = [
        await app_client.post(
            "/webhooks/mercadolibre", content=body, headers={"content-type": "application/json"}
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    [event] = await events(app_settings)
    assert event.duplicate_count == 2
    marker = await queue_marker(app_client, sent_jobs)
    assert queued_ids(sent_jobs) == [event.id, marker]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (note(user_id=999), "unknown_account"),
        (note(topic="payments", resource="/collections/3043111111"), "payments"),
        (note(topic="brand_new_topic", resource="/things/1"), "brand_new_topic"),
    ],
)
async def test_strangers_and_other_topics_get_200_and_are_kept_as_ignored(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    sent_jobs: list[jobs.Job],
    body: dict[str, Any],
    reason: str,
) -> None:
    resp = await app_client.post("/webhooks/mercadolibre", json=body)
    assert resp.status_code == 200
    assert resp.json()["event_status"] == "ignored"
    [event] = await events(app_settings)
    assert event.status == EventStatus.ignored
    assert reason in (event.ignore_reason or "")
    marker = await queue_marker(app_client, sent_jobs)
    assert queued_ids(sent_jobs) == [marker]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, None),
        (json.dumps(note(application_id=1)).encode(), 400, None),
        (json.dumps(note(resource="/orders/12/../../users/me")).encode(), 400, None),
        (json.dumps(note(resource="/orders/" + "9" * 21)).encode(), 400, None),
        (json.dumps(note(sent=float("nan"))).encode(), 400, None),
        (json.dumps(note()).encode("utf-16"), 400, None),
        (json.dumps(note(observations="x" * 5000)).encode(), 413, "payload_too_large"),
        # Nested past the limit: in a field, or deep enough for the parser to recurse out.
        (json.dumps(note(extra=nested(MAX_DEPTH))).encode(), 400, "body_too_deep"),
        (b"[" * 2000 + b"]" * 2000, 400, "body_too_deep"),
        (b'{"a":' * 650 + b"1" + b"}" * 650, 400, "body_too_deep"),
    ],
)
async def test_bad_input_gets_the_envelope_and_nothing_is_stored(
    app_client: httpx.AsyncClient,
    app_settings: Settings,
    content: bytes,
    status: int,
    code: str | None,
) -> None:
    resp = await app_client.post(
        "/webhooks/mercadolibre", content=content, headers={"content-type": "application/json"}
    )
    assert resp.status_code == status
    err = resp.json()
    assert err["status"] == "error" and err["request_id"]
    if code:
        assert err["error"]["code"] == code
    assert await events(app_settings) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # Mercado Libre would answer /orders/02000003508419013 with order 2000003508419013.
        ({"resource": "/orders/02000003508419013"}, "resource"),
        ({"resource": "/orders/9223372036854775808"}, "resource"),  # 2^63
        ({"user_id": f"0{SELLER}"}, "user_id"),
        ({"received": "0001-01-01T00:00:00.000+14:00"}, "received"),  # overflowed in UTC
        ({"received": "9999-12-31T23:59:59.999-14:00"}, "received"),
        ({"received": "1969-12-31T23:59:59Z"}, "received"),
    ],
)
async def test_second_spellings_of_ids_and_impossible_times_are_400s(
    app_client: httpx.AsyncClient, app_settings: Settings, changes: dict[str, Any], field: str
) -> None:
    resp = await app_client.post("/webhooks/mercadolibre", json=note(**changes))
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["status"] == "error" and err["request_id"]
    assert err["error"]["code"] == "invalid_notification"
    assert err["error"]["details"] == {"field": field}
    assert await events(app_settings) == []


@pytest.mark.parametrize("app_settings", [300_000], indirect=True, ids=["max_body_bytes=300000"])
async def test_a_body_nested_100000_levels_deep_is_400(
    app_client: httpx.AsyncClient, app_settings: Settings
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    resp = await app_client.post(
        "/webhooks/mercadolibre",
        content=deep,
        headers={"content-type": "application/json", "X-Request-ID": "ml-deep-1"},
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "status": "error",
        "error": {
            "code": "body_too_deep",
            "message": resp.json()["error"]["message"],
            "details": {"max_depth": MAX_DEPTH},
        },
        "request_id": "ml-deep-1",
    }
    assert f"more than {MAX_DEPTH} levels" in resp.json()["error"]["message"]
    assert await events(app_settings) == []


async def test_a_body_nested_up_to_the_limit_is_kept_as_sent(
    app_client: httpx.AsyncClient, app_settings: Settings
) -> None:
    # The notification object is the first level.
    body = note(extra=nested(MAX_DEPTH - 1))
    resp = await app_client.post("/webhooks/mercadolibre", json=body)
    assert resp.status_code == 200, resp.text
    [event] = await events(app_settings)
    assert event.payload is not None and event.payload["extra"] == nested(MAX_DEPTH - 1)


async def test_unknown_connector_is_404(app_client: httpx.AsyncClient) -> None:
    resp = await app_client.post("/webhooks/nosuchplace", json=note())
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "unknown_connector"


async def test_no_200_when_the_inbox_cannot_commit(
    app_client: httpx.AsyncClient, app_settings: Settings
) -> None:
    # The database goes away (its file is replaced by a directory): the sender must retry.
    from pathlib import Path

    db = Path(app_settings.database_url.split("///", 1)[1])
    engine = create_engine(app_settings)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE webhook_events")
    await engine.dispose()
    resp = await app_client.post("/webhooks/mercadolibre", json=note())
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "inbox_unavailable"
    assert db.is_file()  # noqa: ASYNC240


async def test_a_failure_nobody_expected_is_a_logged_500_in_the_envelope(
    app_client: httpx.AsyncClient, app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.mercadolibre.connector import MercadoLibreConnector

    def broken(self: Any, request: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(MercadoLibreConnector, "parse_notification", broken)
    resp = await app_client.post(
        "/webhooks/mercadolibre", json=note(), headers={"X-Request-ID": "ml-broken-1"}
    )
    assert resp.status_code == 500
    assert resp.headers["x-request-id"] == "ml-broken-1"
    assert resp.json() == {
        "status": "error",
        "error": {
            "code": "internal_error",
            "message": "An internal error occurred; it has been logged.",
            "details": {},
        },
        "request_id": "ml-broken-1",
    }
    assert "boom" not in resp.text
    assert await events(app_settings) == []


async def test_a_streamed_body_over_the_limit_is_413_and_a_bad_length_is_400(
    app_client: httpx.AsyncClient, app_settings: Settings
) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    resp = await app_client.post("/webhooks/mercadolibre", content=chunks())
    assert resp.status_code == 413
    assert resp.json()["error"]["details"] == {"max_bytes": 4096}

    async def small() -> Any:
        yield json.dumps(note())[:50].encode()
        yield json.dumps(note())[50:].encode()

    resp = await app_client.post("/webhooks/mercadolibre", content=small())
    assert resp.status_code == 200, resp.text
    resp = await app_client.post(
        "/webhooks/mercadolibre", content=b"{}", headers={"content-length": "-1"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "bad_request"
    assert len(await events(app_settings)) == 1
