"""The sandbox notifier judges deliveries like Mercado Libre and keeps what it could not
deliver in missed feeds; the connector accepts what it delivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from connectors.errors import InvalidNotification
from tests.connectors.mercadolibre.fixtures import (
    CALLBACK_URL,
    CLIENT_ID,
    SELLER_ID,
    Callback,
    MLEnv,
    ml_env,
    ml_settings,
    patch_config,
)


@pytest.fixture
async def env() -> AsyncIterator[MLEnv]:
    async with ml_env() as env:
        yield env


async def notify(env: MLEnv, **body: Any) -> dict[str, Any]:
    payload = {"topic": "orders_v2", "resource": "/orders/2195160686", "user_id": SELLER_ID, **body}
    response = await env.admin.post("/_sandbox/notify", json=payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_delivers_the_documented_body(env: MLEnv) -> None:
    [record] = (await notify(env))["notifications"]
    assert record["accepted"] is True
    assert [d["attempt"] for d in record["deliveries"]] == [1]
    [delivery] = env.callback.received
    body = delivery.json()
    # orders_v2 as documented: no _id, numeric ids, the app id as a JSON number.
    assert list(body) == [
        "resource",
        "user_id",
        "topic",
        "application_id",
        "attempts",
        "sent",
        "received",
    ]
    assert body["application_id"] == int(CLIENT_ID)
    assert str(int(CLIENT_ID)) in delivery.body.decode()  # not rounded through a double
    assert body["user_id"] == SELLER_ID
    assert body["attempts"] == 1
    assert body["received"].endswith("Z")
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["content-length"] == str(len(delivery.body))
    assert delivery.query == {"token": CALLBACK_URL.split("token=")[1]}
    n = env.connector.parse_notification(delivery.inbound())
    assert n.order_id == "2195160686"


async def test_retries_keep_received_and_id() -> None:
    callback = Callback(plan=[(500, 0.0), (404, 0.0), (200, 0.0)])
    async with ml_env(callback=callback) as env:
        await patch_config(env, notify_retry_delays=[0.02])
        [record] = (await notify(env, with_id=True))["notifications"]
        assert record["accepted"] is True
        assert [d["status"] for d in record["deliveries"]] == [500, 404, 200]
        bodies = [d.json() for d in callback.received]
        assert [b["attempts"] for b in bodies] == [1, 2, 3]
        assert len({b["received"] for b in bodies}) == 1
        assert len({b["_id"] for b in bodies}) == 1
        sent = [datetime.fromisoformat(b["sent"]) for b in bodies]
        assert sent[0] < sent[1] < sent[2]
        # The product sees one event: every delivery has the same dedupe key.
        keys = {env.connector.parse_notification(d.inbound()).dedupe_key for d in callback.received}
        assert len(keys) == 1
        assert not (await env.admin.get("/_sandbox/missed_feeds")).json()["messages"]


async def test_fallback_key_is_stable_across_retries() -> None:
    callback = Callback(plan=[(503, 0.0)])
    async with ml_env(callback=callback) as env:
        await notify(env)  # orders_v2 without _id
        first, second = callback.received
        a = env.connector.parse_notification(first.inbound())
        b = env.connector.parse_notification(second.inbound())
        assert (a.attempts, b.attempts) == (1, 2)
        assert a.dedupe_key == b.dedupe_key


async def test_a_slow_200_is_not_accepted() -> None:
    callback = Callback(plan=[(200, 0.3), (200, 0.0)])
    async with ml_env(callback=callback) as env:
        await patch_config(env, notify_timeout_ms=50)
        [record] = (await notify(env))["notifications"]
        first, second = record["deliveries"]
        assert first["status"] == 200 and first["accepted"] is False
        assert first["req_time"] > 50
        assert second["accepted"] is True
        assert len(callback.received) == 2


async def test_a_hanging_callback_is_timed_out_and_retried() -> None:
    callback = Callback(plan=[(200, 30.0), (200, 0.0)])
    async with ml_env(callback=callback) as env:
        await patch_config(env, notify_timeout_ms=50)
        [record] = (await notify(env))["notifications"]
        first, second = record["deliveries"]
        assert first["status"] is None and first["error"] == "ReadTimeout"
        assert second["accepted"] is True


async def test_eight_failures_land_in_missed_feeds() -> None:
    callback = Callback(plan=[(500, 0.0)] * 20)
    async with ml_env(callback=callback) as env:
        [record] = (await notify(env, with_id=True))["notifications"]
        assert record["accepted"] is False and record["missed"] is True
        assert [d["attempt"] for d in record["deliveries"]] == list(range(1, 9))
        assert len(callback.received) == 8
        [missed] = (await env.admin.get("/_sandbox/missed_feeds")).json()["messages"]
        assert missed["_id"] == callback.received[0].json()["_id"]
        assert missed["attempts"] == 8
        assert missed["topic"] == "orders_v2"
        assert missed["request"]["url"] == CALLBACK_URL
        assert missed["request"]["data"] == callback.received[-1].body.decode()
        assert missed["response"]["http_code"] == 500
        assert isinstance(missed["response"]["req_time"], float)

        # The real route serves it too, to the application's own token.
        tokens = await env.tokens()
        headers = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
        real = await env.admin.get("/missed_feeds", params={"app_id": CLIENT_ID}, headers=headers)
        assert real.status_code == 200
        assert [m["_id"] for m in real.json()["messages"]] == [missed["_id"]]
        assert (
            await env.admin.get("/missed_feeds", params={"app_id": "1"}, headers=headers)
        ).status_code == 403
        assert (
            await env.admin.get(
                "/missed_feeds", params={"app_id": CLIENT_ID, "topic": "items"}, headers=headers
            )
        ).status_code == 400
        assert (
            await env.admin.get("/missed_feeds", params={"app_id": CLIENT_ID})
        ).status_code == 401

        # Kept two days, then gone.
        await patch_config(env, missed_feeds_retention_seconds=0)
        assert (await env.admin.get("/_sandbox/missed_feeds")).json()["messages"] == []


async def test_drop_rate_never_reaches_the_callback(env: MLEnv) -> None:
    [record] = (await notify(env, drop_rate=1.0))["notifications"]
    assert record["missed"] is True
    assert all(d["dropped"] for d in record["deliveries"])
    assert env.callback.received == []


async def test_drop_rate_is_seeded(env: MLEnv) -> None:
    first = await notify(env, drop_rate=0.5, seed=11, repeat=5)
    second = await notify(env, drop_rate=0.5, seed=11, repeat=5)

    def pattern(result: dict[str, Any]) -> list[list[bool]]:
        return [[bool(d.get("dropped")) for d in r["deliveries"]] for r in result["notifications"]]

    assert pattern(first) == pattern(second)
    assert any(any(p) for p in pattern(first))


async def test_user_id_as_string_is_accepted(env: MLEnv) -> None:
    await notify(env, user_id_as_string=True)
    [delivery] = env.callback.received
    assert delivery.json()["user_id"] == str(SELLER_ID)
    assert env.connector.parse_notification(delivery.inbound()).account_id == str(SELLER_ID)


async def test_repeat_distinct_events_and_same_event(env: MLEnv) -> None:
    distinct = await notify(env, repeat=3, with_id=True)
    assert len(distinct["notifications"]) == 3
    keys = {env.connector.parse_notification(d.inbound()).dedupe_key for d in env.callback.received}
    assert len(keys) == 3
    env.callback.received.clear()
    await notify(env, repeat=3, same_event=True)
    keys = {env.connector.parse_notification(d.inbound()).dedupe_key for d in env.callback.received}
    assert len(env.callback.received) == 3
    assert len(keys) == 1


async def test_source_ip_is_what_the_product_checks() -> None:
    strict = ml_settings(notification_ips="54.88.218.97")
    async with ml_env(settings=strict) as env:
        await notify(env)
        assert env.connector.parse_notification(env.callback.received[0].inbound()).order_id
    async with ml_env(settings=strict, callback_ip="10.1.2.3") as env:
        await notify(env)
        with pytest.raises(InvalidNotification):
            env.connector.parse_notification(env.callback.received[0].inbound())


async def test_topics_filter_and_missing_target(env: MLEnv) -> None:
    skipped = await notify(env, topic="questions", resource="/questions/1")
    assert skipped["notifications"] == [] and "skipped" in skipped
    await env.admin.post("/_sandbox/reset")
    response = await env.admin.post(
        "/_sandbox/notify", json={"resource": "/orders/1", "user_id": 1}
    )
    assert response.status_code == 409


async def test_auto_notify_on_admin_changes(env: MLEnv) -> None:
    await patch_config(env, auto_notify=True)
    ids = await env.seed_orders(3)
    assert (await env.admin.post("/_sandbox/notifications/flush")).json()["flushed"] == 3
    parsed = [env.connector.parse_notification(d.inbound()) for d in env.callback.received]
    assert sorted(n.order_id or "" for n in parsed) == sorted(ids)
    assert {n.account_id for n in parsed} == {str(SELLER_ID)}

    env.callback.received.clear()
    await env.admin.patch(f"/_sandbox/orders/{ids[0]}", json={"status": "cancelled"})
    await env.admin.post("/_sandbox/notifications/flush")
    [delivery] = env.callback.received
    assert env.connector.parse_notification(delivery.inbound()).order_id == ids[0]


async def test_no_auto_notify_when_off(env: MLEnv) -> None:
    await env.seed_orders(2)
    await env.admin.post("/_sandbox/notifications/flush")
    assert env.callback.received == []


async def test_background_delivery(env: MLEnv) -> None:
    queued = await notify(env, wait=False, repeat=2)
    assert queued["queued"] == 2
    await env.admin.post("/_sandbox/notifications/flush")
    assert len(env.callback.received) == 2
    deliveries = (await env.admin.get("/_sandbox/notifications")).json()["deliveries"]
    assert len(deliveries) == 2 and all(d["accepted"] for d in deliveries)
