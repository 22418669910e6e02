"""Verify and parse Mercado Libre notifications, without any network call.

Mercado Libre does not sign notifications (EXTERNAL_APIS §1.1.4), so what can be checked
is checked here: the body's shape, ``application_id`` against our client id, the resource
pattern for the topic, and optionally the source IP and a secret ``token`` in the URL.
Whether ``user_id`` is a linked seller needs the database and is the caller's check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import InboundRequest
from connectors.errors import InvalidNotification
from connectors.mercadolibre.ids import canonical_id
from connectors.mercadolibre.mapping import CONNECTOR, EARLIEST, LATEST, parse_time
from connectors.models import Notification

ORDER_TOPIC = "orders_v2"
#: The shape of an ``orders_v2`` resource; the id in it must also be canonical (``ids``).
ORDER_RESOURCE = re.compile(r"^/orders/([0-9]{1,20})$", re.ASCII)
#: Topics the product recognises but does not act on, with their resource shapes. A topic
#: outside this table and ``orders_v2`` is accepted and ignored if its resource is a path.
OTHER_TOPICS: dict[str, re.Pattern[str]] = {
    "orders": re.compile(r"^/orders/[0-9]+$", re.ASCII),
    "created_orders": re.compile(r"^/orders/[0-9]+$", re.ASCII),
    "orders_feedback": re.compile(r"^/orders/[0-9]+(/feedback)?$", re.ASCII),
    "orders feedback": re.compile(r"^/orders/[0-9]+(/feedback)?$", re.ASCII),
    "payments": re.compile(r"^/collections/[0-9]+$", re.ASCII),
    "shipments": re.compile(r"^/shipments/[0-9]+$", re.ASCII),
    "items": re.compile(r"^/items/[A-Z]{3}[0-9]+$", re.ASCII),
    "questions": re.compile(r"^/questions/[0-9]+$", re.ASCII),
    "invoices": re.compile(r"^/users/[0-9]+/invoices/[\w$-]+$", re.ASCII),
    "post_purchase": re.compile(r"^/?post-purchase/[\w/-]+$", re.ASCII),
    "claims": re.compile(r"^/?post-purchase/[\w/-]+$", re.ASCII),
    "messages": re.compile(r"^[\w/-]+$", re.ASCII),
    "items_prices": re.compile(r"^/items/[A-Z]{3}[0-9]+/prices$", re.ASCII),
    "items prices": re.compile(r"^/items/[A-Z]{3}[0-9]+/prices$", re.ASCII),
    "stock-location": re.compile(r"^/[\w/-]+$", re.ASCII),
    "fbm_stock_operations": re.compile(r"^/[\w/-]+$", re.ASCII),
    "flex-handshakes": re.compile(r"^/[\w/-]+$", re.ASCII),
    "public_offers": re.compile(r"^/[\w/-]+$", re.ASCII),
    "public_candidates": re.compile(r"^/[\w/-]+$", re.ASCII),
    "vis_leads": re.compile(r"^/?[\w/-]+$", re.ASCII),
}
#: What an unknown topic's resource must look like (a path, or a bare hash as ``messages``).
OTHER_RESOURCE = re.compile(r"^/?[\w$./-]{1,250}$", re.ASCII)
_TOPIC = re.compile(r"^[\w .-]{1,64}$", re.ASCII)
LEGACY_ORDER_TOPICS = frozenset({"orders", "created_orders"})
#: The inbox column holding the key is 190 characters (utf8mb4 index limit).
MAX_DEDUPE_KEY = 190


@dataclass(frozen=True)
class NotificationPolicy:
    application_id: str
    #: Allowed source networks; empty means no source check.
    allowed_sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    #: Expected ``?token=`` value; empty means no token check.
    token: str = ""

    @staticmethod
    def sources(
        raw: str | Iterable[str],
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())


def _invalid(message: str, field: str | None = None) -> InvalidNotification:
    return InvalidNotification(
        f"Mercado Libre notification: {message}", code="invalid_notification", field=field
    )


def _id_text(value: Any, field: str) -> str:
    """A numeric id given as a JSON number or a digit string, as its canonical text.

    JSON integers are parsed exactly by Python, so ids beyond 2^53 survive; a float (an id
    that went through a double somewhere) is refused rather than compared approximately,
    and so is a second spelling of an id ("0123", " 123").
    """
    found = canonical_id(value)
    if found is None:
        raise _invalid(f"{field} is not an id: give it as a JSON integer", field)
    return found


def _check_source(policy: NotificationPolicy, client_ip: str | None) -> None:
    if not policy.allowed_sources:
        return
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        raise _invalid("unknown source address") from None
    if not any(address in net for net in policy.allowed_sources):
        raise _invalid("source address not allowed")


def _check_token(policy: NotificationPolicy, query: Mapping[str, str]) -> None:
    if not policy.token:
        return
    given = query.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8"), policy.token.encode("utf-8")
    ):
        raise _invalid("bad or missing token")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def dedupe_key(body: dict[str, Any], topic: str, resource: str, received: str | None) -> str:
    """``_id`` (or the subtopic model's ``id``) when present; else topic + resource + received.

    ``received`` stays the same across Mercado Libre's retries, so a retried delivery gets
    the same key while a new event on the same resource gets a new one.
    """
    for field in ("_id", "id"):
        value = body.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            key = f"id:{str(value).strip()}"
            break
    else:
        if not received:
            raise _invalid("neither _id nor received: cannot deduplicate", "received")
        key = f"{topic}:{resource}:{received}"
    if len(key) > MAX_DEDUPE_KEY or not key.isprintable():
        # Too long for the column, or not storable text (a lone surrogate from a \u escape).
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


def parse_notification(request: InboundRequest, policy: NotificationPolicy) -> Notification:
    _check_source(policy, request.client_ip)
    _check_token(policy, request.query)
    try:
        # Strict JSON, as RFC 8259 has it between systems: UTF-8, and no NaN or Infinity
        # (Python's parser takes both, and other encodings too).
        body = json.loads(request.body.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("body is not JSON") from None
    if not isinstance(body, dict):
        raise _invalid("body is not a JSON object")

    if not policy.application_id:
        # No configured client id means nothing can be verified: refuse everything.
        raise _invalid("no application id configured", "application_id")
    if _id_text(body.get("application_id"), "application_id") != policy.application_id:
        raise _invalid("application_id does not match", "application_id")

    topic = body.get("topic")
    resource = body.get("resource")
    if not isinstance(topic, str) or not topic:
        raise _invalid("topic missing", "topic")
    if not isinstance(resource, str) or not resource:
        raise _invalid("resource missing", "resource")
    user_id = _id_text(body.get("user_id"), "user_id")

    attempts = body.get("attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise _invalid("attempts is not a positive integer", "attempts")
    # Some documented examples misspell the field.
    received_raw = body.get("received", body.get("recieved"))
    received_text = received_raw if isinstance(received_raw, str) else None
    received_at = parse_time(received_text)
    if received_text is not None and received_at is None:
        raise _invalid(
            f"received is not an ISO 8601 timestamp from {EARLIEST.year} to {LATEST.year}",
            "received",
        )

    order_id: str | None = None
    ignore_reason: str | None = None
    if topic == ORDER_TOPIC:
        match = ORDER_RESOURCE.fullmatch(resource)
        order_id = canonical_id(match.group(1)) if match else None
        if order_id is None:
            # Refused, not stored as ignored: Mercado Libre writes its ids one way only, so
            # a second spelling ("/orders/0123") never comes from it and no retry of its
            # own is turned away; taken, it would fetch order 123 as a new order.
            raise _invalid(
                "resource is not /orders/<id> with the id as plain digits "
                "(no leading zero, sign or spaces)",
                "resource",
            )
    elif topic in OTHER_TOPICS:
        if not OTHER_TOPICS[topic].fullmatch(resource):
            raise _invalid(f"resource does not match the {topic} pattern", "resource")
        ignore_reason = (
            f"legacy topic {topic!r}; orders arrive on orders_v2"
            if topic in LEGACY_ORDER_TOPICS
            else f"topic {topic!r} is not one the product acts on"
        )
    else:
        # A topic we do not know (a new one, or one subscribed by mistake) is still a
        # notification from our application: answering anything but 200 makes Mercado
        # Libre retry it for an hour and, in the end, disable the topic.
        if not _TOPIC.fullmatch(topic):
            raise _invalid("topic is not a topic name", "topic")
        if not OTHER_RESOURCE.fullmatch(resource):
            raise _invalid("resource is not a path", "resource")
        ignore_reason = f"topic {topic!r} is not one the product acts on"

    return Notification(
        connector=CONNECTOR,
        topic=topic,
        resource=resource,
        account_id=user_id,
        dedupe_key=dedupe_key(body, topic, resource, received_text),
        order_id=order_id,
        ignore_reason=ignore_reason,
        received_at=received_at,
        attempts=attempts,
    )
