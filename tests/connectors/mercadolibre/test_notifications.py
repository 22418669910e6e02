"""Verifying and parsing Mercado Libre notifications (no network involved)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import InboundRequest, NoLimit
from connectors.errors import InvalidNotification
from connectors.mercadolibre import MercadoLibreConnector, factory
from connectors.mercadolibre.mapping import parse_time
from tests.connectors.mercadolibre.fixtures import CLIENT_ID, WEBHOOK_TOKEN, ml_settings

ORDER_BODY: dict[str, Any] = {
    "resource": "/orders/2195160686",
    "user_id": 468424240,
    "topic": "orders_v2",
    "application_id": int(CLIENT_ID),
    "attempts": 1,
    "sent": "2019-10-30T16:19:20.129Z",
    "received": "2019-10-30T16:19:20.106Z",
}


def connector(**overrides: Any) -> MercadoLibreConnector:
    # Parsing makes no call; the client is never used.
    return factory(httpx.AsyncClient(), ml_settings(**overrides), NoLimit())


#: One connector for the fuzzed tests, which parse hundreds of bodies.
PARSER = connector()


def inbound(
    body: dict[str, Any] | bytes,
    *,
    token: str | None = WEBHOOK_TOKEN,
    ip: str | None = "54.88.218.97",
) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    query = {"token": token} if token is not None else {}
    return InboundRequest(
        body=raw, headers={"content-type": "application/json"}, query=query, client_ip=ip
    )


def test_orders_v2_official_shape() -> None:
    n = connector().parse_notification(inbound(ORDER_BODY))
    assert n.connector == "mercadolibre"
    assert n.topic == "orders_v2"
    assert n.order_id == "2195160686"
    assert n.account_id == "468424240"
    assert n.ignore_reason is None
    assert n.attempts == 1
    assert n.received_at == datetime(2019, 10, 30, 16, 19, 20, 106000, tzinfo=UTC)
    assert n.dedupe_key == "orders_v2:/orders/2195160686:2019-10-30T16:19:20.106Z"


def test_user_id_may_be_a_string() -> None:
    n = connector().parse_notification(inbound({**ORDER_BODY, "user_id": "468424240"}))
    assert n.account_id == "468424240"


def test_application_id_is_compared_as_text_beyond_2_53() -> None:
    # 9007199254740992 == 9007199254740993 as doubles; as ids they differ.
    assert float(int(CLIENT_ID) - 1) == float(int(CLIENT_ID))
    with pytest.raises(InvalidNotification):
        connector().parse_notification(
            inbound({**ORDER_BODY, "application_id": int(CLIENT_ID) - 1})
        )
    with pytest.raises(InvalidNotification):
        connector().parse_notification(
            inbound({**ORDER_BODY, "application_id": float(int(CLIENT_ID))})
        )
    n = connector().parse_notification(inbound({**ORDER_BODY, "application_id": CLIENT_ID}))
    assert n.order_id == "2195160686"


def test_nothing_verifies_without_a_configured_client_id() -> None:
    with pytest.raises(InvalidNotification):
        connector(client_id="").parse_notification(inbound(ORDER_BODY))


@pytest.mark.parametrize(
    "resource",
    [
        "/orders/abc",
        "/orders/1/../../users/me",
        "orders/1",
        "/orders/1?x=1",
        "/orders/",
        "",
        "/orders/1\n",
    ],
)
def test_order_resource_pattern(resource: str) -> None:
    with pytest.raises(InvalidNotification):
        connector().parse_notification(inbound({**ORDER_BODY, "resource": resource}))


@pytest.mark.parametrize(
    ("topic", "resource"),
    [
        ("payments", "/collections/3043111111"),
        ("shipments", "/shipments/40546549876"),
        ("items", "/items/MLA686791111"),
        ("invoices", "/users/123456789/invoices/$INVOICE_ID"),
        ("post_purchase", "/post-purchase/v1/claims/5108684499"),
        ("orders", "/orders/2195160686"),
        ("questions", "/questions/5036111111"),
    ],
)
def test_other_known_topics_are_valid_but_ignored(topic: str, resource: str) -> None:
    n = connector().parse_notification(
        inbound({**ORDER_BODY, "topic": topic, "resource": resource})
    )
    assert n.ignore_reason
    assert n.order_id is None


def test_unknown_topic_is_valid_but_ignored() -> None:
    note = connector().parse_notification(
        inbound({**ORDER_BODY, "topic": "made_up_topic", "resource": "/made_up/1"})
    )
    assert note.order_id is None
    assert note.ignore_reason is not None and "made_up_topic" in note.ignore_reason


def test_known_topic_with_wrong_resource_is_invalid() -> None:
    with pytest.raises(InvalidNotification):
        connector().parse_notification(
            inbound({**ORDER_BODY, "topic": "payments", "resource": "/orders/1"})
        )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        {**ORDER_BODY, "topic": "made_up_topic", "resource": "not a path"},
        {k: v for k, v in ORDER_BODY.items() if k != "topic"},
        {k: v for k, v in ORDER_BODY.items() if k != "application_id"},
        {k: v for k, v in ORDER_BODY.items() if k != "user_id"},
        {**ORDER_BODY, "user_id": "12a"},
        {**ORDER_BODY, "user_id": True},
        {**ORDER_BODY, "user_id": 1.5},
        {**ORDER_BODY, "attempts": 0},
        {**ORDER_BODY, "received": "yesterday"},
        {k: v for k, v in ORDER_BODY.items() if k != "received"},
    ],
)
def test_malformed_bodies(body: dict[str, Any] | bytes) -> None:
    with pytest.raises(InvalidNotification):
        connector().parse_notification(inbound(body))


def test_url_token() -> None:
    c = connector()
    for token in (None, "", "wrong", WEBHOOK_TOKEN + "x"):
        with pytest.raises(InvalidNotification):
            c.parse_notification(inbound(ORDER_BODY, token=token))
    # No token configured: none is needed.
    open_connector = connector(webhook_token="")
    assert open_connector.parse_notification(inbound(ORDER_BODY, token=None)).order_id


def test_source_ip_allow_list() -> None:
    c = connector(notification_ips="54.88.218.97, 18.215.140.160,35.186.0.0/16")
    assert c.parse_notification(inbound(ORDER_BODY, ip="54.88.218.97")).order_id
    assert c.parse_notification(inbound(ORDER_BODY, ip="35.186.182.146")).order_id
    for ip in ("10.0.0.1", None, "not-an-ip"):
        with pytest.raises(InvalidNotification):
            c.parse_notification(inbound(ORDER_BODY, ip=ip))
    # An empty list disables the check.
    assert connector().parse_notification(inbound(ORDER_BODY, ip="10.0.0.1")).order_id


def test_dedupe_prefers_id_and_survives_retries() -> None:
    c = connector()
    with_id = {**ORDER_BODY, "_id": "5da87eea5b35b865994cfd7d"}
    first = c.parse_notification(inbound(with_id))
    retry = c.parse_notification(
        inbound({**with_id, "attempts": 4, "sent": "2019-10-30T16:26:20.000Z"})
    )
    assert first.dedupe_key == retry.dedupe_key == "id:5da87eea5b35b865994cfd7d"
    assert retry.attempts == 4

    # Without _id: topic + resource + received, equal across retries ...
    a = c.parse_notification(inbound(ORDER_BODY))
    b = c.parse_notification(inbound({**ORDER_BODY, "attempts": 2, "sent": "2019-10-30T17:00Z"}))
    assert a.dedupe_key == b.dedupe_key
    # ... and different for a new event on the same order.
    later = c.parse_notification(inbound({**ORDER_BODY, "received": "2019-10-30T16:30:00.000Z"}))
    assert later.dedupe_key != a.dedupe_key


def test_subtopic_model_id_and_misspelled_received() -> None:
    c = connector()
    body = {k: v for k, v in ORDER_BODY.items() if k != "received"}
    body["recieved"] = "2019-10-30T16:19:20.106Z"
    n = c.parse_notification(inbound(body))
    assert n.received_at is not None
    sub = c.parse_notification(
        inbound({**ORDER_BODY, "id": "5e2827f2-99b7-474e-b68b-6a86e934cc7e"})
    )
    assert sub.dedupe_key == "id:5e2827f2-99b7-474e-b68b-6a86e934cc7e"


def test_long_keys_are_hashed_to_fit() -> None:
    c = connector()
    long_id = "x" * 400
    n = c.parse_notification(inbound({**ORDER_BODY, "_id": long_id}))
    assert len(n.dedupe_key) <= 190
    other = c.parse_notification(inbound({**ORDER_BODY, "_id": long_id + "y"}))
    assert other.dedupe_key != n.dedupe_key
    assert len(other.dedupe_key) <= 190


# --- one spelling per id ---------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        "/orders/02195160686",  # ML answers this with order 2195160686
        "/orders/0",
        "/orders/+2195160686",
        "/orders/-2195160686",
        "/orders/ 2195160686",
        "/orders/2195160686 ",
        "/orders/\u0662\u0661\u0669\u0665",  # Arabic-Indic digits
        "/orders/\uff12\uff11\uff19\uff15",  # full-width digits
        "/orders/9223372036854775808",  # 2^63: beyond a 64-bit id
        "/orders/" + "9" * 20,
    ],
)
def test_an_order_id_in_any_but_its_one_spelling_is_refused(resource: str) -> None:
    with pytest.raises(InvalidNotification) as caught:
        connector().parse_notification(inbound({**ORDER_BODY, "resource": resource}))
    assert caught.value.field == "resource"


def test_the_largest_64_bit_order_id_is_an_order_id() -> None:
    n = connector().parse_notification(
        inbound({**ORDER_BODY, "resource": "/orders/9223372036854775807"})
    )
    assert n.order_id == "9223372036854775807"


@pytest.mark.parametrize("user_id", ["0468424240", " 468424240", "+468424240", 0, -468424240])
def test_a_user_id_in_a_second_spelling_is_refused(user_id: Any) -> None:
    with pytest.raises(InvalidNotification) as caught:
        connector().parse_notification(inbound({**ORDER_BODY, "user_id": user_id}))
    assert caught.value.field == "user_id"


# --- times from outside ----------------------------------------------------------------


@pytest.mark.parametrize(
    "received",
    [
        "0001-01-01T00:00:00.000+14:00",  # year 1 becomes year 0 in UTC: OverflowError
        "9999-12-31T23:59:59.999-14:00",  # and year 10000
        "9999-06-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "2019-10-30T16:19:20.106Z" + " " * 100,
    ],
)
def test_a_received_time_out_of_range_is_refused(received: str) -> None:
    with pytest.raises(InvalidNotification) as caught:
        connector().parse_notification(inbound({**ORDER_BODY, "received": received}))
    assert caught.value.field == "received"


def _refused_or_aware_utc(parsed: datetime | None) -> None:
    if parsed is not None:
        assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
        assert 1970 <= parsed.year < 9999  # mapping.EARLIEST, mapping.LATEST
        # What reports and windows do with a parsed time must not overflow either.
        parsed.astimezone(timezone(timedelta(hours=-14)))
        parsed.astimezone(timezone(timedelta(hours=14)))


#: Text shaped like ISO 8601 timestamps, with every field free to go out of range.
ISO_LIKE = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".0", ".123", ".123456", ".1234567"]),
    st.one_of(
        st.just(""),
        st.just("Z"),
        st.builds(
            "{}{:02d}:{:02d}".format,
            st.sampled_from("+-"),
            st.integers(0, 24),
            st.integers(0, 60),
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(ISO_LIKE, st.text(max_size=80), st.none(), st.integers(), st.floats()))
def test_parse_time_gives_an_aware_utc_time_or_none(value: Any) -> None:
    _refused_or_aware_utc(parse_time(value))


@settings(max_examples=300, deadline=None)
@given(st.one_of(ISO_LIKE, st.text(max_size=80)))
def test_any_received_is_parsed_or_cleanly_refused(received: str) -> None:
    try:
        n = PARSER.parse_notification(inbound({**ORDER_BODY, "received": received}))
    except InvalidNotification as exc:
        assert exc.field == "received"
    else:
        _refused_or_aware_utc(n.received_at)
        assert n.received_at is not None
