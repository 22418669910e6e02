"""Mercado Libre order and billing-info JSON → the canonical :class:`Order`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from connectors.errors import DataError
from connectors.mercadolibre.ids import canonical_id
from connectors.models import (
    Address,
    BuyerIdentity,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
)

CONNECTOR = "mercadolibre"
#: The tag Mercado Libre puts on an order it suspects of fraud.
FRAUD_TAG = "fraud_risk_detected"

STATUS_MAP: dict[str, OrderStatus] = {
    "paid": OrderStatus.paid,
    "confirmed": OrderStatus.pending,
    "payment_required": OrderStatus.pending,
    "payment_in_process": OrderStatus.pending,
    "partially_paid": OrderStatus.partially_paid,
    "cancelled": OrderStatus.cancelled,
    # Only buyers see this one, but it means the same to an invoice.
    "manually_cancelled": OrderStatus.cancelled,
    "invalid": OrderStatus.invalid,
}
#: ``attributes.cust_type`` in MCO billing info: BU = business (NIT), CO = consumer (CC).
COMPANY_CUST_TYPES = frozenset({"BU"})
PERSON_CUST_TYPES = frozenset({"CO"})
COMPANY_DOC_TYPES = frozenset({"NIT"})
#: The instants a Mercado Libre timestamp may name. Nothing it dates precedes the Unix
#: epoch, and the end stays a year short of ``datetime.max`` so that moving a parsed time
#: to another zone or a day further, as reports and windows do, cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
#: Longer than any ISO 8601 timestamp: not worth parsing.
_MAX_TIME_TEXT = 64


def money(value: Any, *, field: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise DataError(
            f"Mercado Libre order: {field} is not an amount", code="bad_amount", field=field
        )
    try:
        # str() first: a float that slipped through becomes its shortest repr, not its binary.
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise DataError(
            f"Mercado Libre order: {field} is not an amount", code="bad_amount", field=field
        ) from exc


def optional_money(value: Any, *, field: str) -> Decimal | None:
    return None if value is None else money(value, field=field)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive taken as UTC); None for
    anything else, including a time outside ``[EARLIEST, LATEST)``.

    Outside input: ``0001-01-01T00:00:00+14:00`` parses, and then overflows when moved
    to UTC, so the conversion is guarded as much as the parsing.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_TIME_TEXT:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if EARLIEST <= parsed < LATEST else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def map_status(raw: Any) -> OrderStatus:
    if not isinstance(raw, str) or raw not in STATUS_MAP:
        # An unknown status must not turn into "wait" or "invoice" silently: park it.
        raise DataError(
            f"Mercado Libre order has an unknown status {raw!r}",
            code="unknown_order_status",
            field="status",
        )
    return STATUS_MAP[raw]


def map_lines(order: dict[str, Any]) -> list[OrderLine]:
    lines = []
    for index, entry in enumerate(order.get("order_items") or []):
        entry = _dict(entry)
        item = _dict(entry.get("item"))
        item_id = _str(item.get("id"))
        if item_id is None:
            raise DataError(
                "Mercado Libre order line without an item id",
                code="bad_order_item",
                field=f"order_items[{index}].item.id",
            )
        lines.append(
            OrderLine(
                item_id=item_id,
                variation_id=_str(item.get("variation_id")),
                # Which of the two ML fields is canonical is not documented; prefer the newer.
                sku=_str(item.get("seller_sku")) or _str(item.get("seller_custom_field")),
                title=_str(item.get("title")) or item_id,
                quantity=money(entry.get("quantity"), field=f"order_items[{index}].quantity"),
                unit_price=money(entry.get("unit_price"), field=f"order_items[{index}].unit_price"),
                full_unit_price=optional_money(
                    entry.get("full_unit_price"), field=f"order_items[{index}].full_unit_price"
                ),
            )
        )
    return lines


def map_payments(order: dict[str, Any]) -> list[Payment]:
    payments = []
    for index, raw in enumerate(order.get("payments") or []):
        raw = _dict(raw)
        pid = _str(raw.get("id"))
        if pid is None:
            continue
        amount = raw.get("transaction_amount")
        payments.append(
            Payment(
                id=pid,
                status=_str(raw.get("status")) or "unknown",
                amount=money(
                    amount if amount is not None else 0,
                    field=f"payments[{index}].transaction_amount",
                ),
                shipping_cost=money(
                    raw.get("shipping_cost") or 0, field=f"payments[{index}].shipping_cost"
                ),
                method=_str(raw.get("payment_method_id")),
                approved_at=parse_time(raw.get("date_approved")),
            )
        )
    return payments


def buyer_paid_shipping(order: dict[str, Any], payments: list[Payment]) -> Decimal:
    """Shipping the buyer paid: from approved payments, else the order's ``shipping_cost``."""
    approved = [p for p in payments if p.status == "approved"]
    if approved:
        return sum((p.shipping_cost for p in approved), Decimal(0))
    value = order.get("shipping_cost")
    return money(value, field="shipping_cost") if value is not None else Decimal(0)


def _attribute(info: dict[str, Any], name: str) -> str | None:
    attributes = info.get("attributes")
    if isinstance(attributes, dict):
        return _str(attributes.get(name))
    if isinstance(attributes, list):
        for entry in attributes:
            entry = _dict(entry)
            if entry.get("id") == name or entry.get("type") == name:
                return _str(entry.get("value") or entry.get("value_name"))
    return None


def _legacy_billing(info: dict[str, Any]) -> dict[str, Any]:
    """The v1 ``additional_info`` list flattened into the v2 field names."""
    extra = {}
    for entry in info.get("additional_info") or []:
        entry = _dict(entry)
        key, value = _str(entry.get("type")), entry.get("value")
        if key:
            extra[key.upper()] = value
    return {
        "identification": {
            "type": info.get("doc_type") or extra.get("DOC_TYPE"),
            "number": info.get("doc_number") or extra.get("DOC_NUMBER"),
        },
        "name": extra.get("BUSINESS_NAME") or extra.get("FIRST_NAME"),
        "last_name": extra.get("LAST_NAME"),
        "address": {
            "street_name": extra.get("STREET_NAME"),
            "street_number": extra.get("STREET_NUMBER"),
            "city_name": extra.get("CITY_NAME"),
            "state": {"name": extra.get("STATE_NAME")},
            "zip_code": extra.get("ZIP_CODE"),
        },
        "attributes": {"cust_type": extra.get("CUST_TYPE")},
    }


def billing_details(document: Any) -> dict[str, Any] | None:
    """The ``billing_info`` object from a billing-info answer (v2 or the legacy v1 shape)."""
    document = _dict(document)
    info = _dict(_dict(document.get("buyer")).get("billing_info")) or _dict(
        document.get("billing_info")
    )
    if not info:
        return None
    if "identification" not in info and ("doc_type" in info or "additional_info" in info):
        return _legacy_billing(info)
    return info


def map_buyer(order: dict[str, Any], billing_document: Any, *, fetched: bool) -> BuyerIdentity:
    """The buyer's fiscal identity.

    ``complete`` is False whenever the invoice data is not all there: billing info not
    fetched (search results, a 206 without ``buyer``), not yet processed (nulls), or absent.
    """
    buyer = _dict(order.get("buyer"))
    external_id = _str(buyer.get("id"))
    email = _str(buyer.get("email"))
    phone_raw = buyer.get("phone")
    phone = None
    if isinstance(phone_raw, dict):
        phone = _str("".join(str(phone_raw.get(k) or "") for k in ("area_code", "number")))
    info = billing_details(billing_document) if fetched else None
    if info is None:
        return BuyerIdentity(
            external_id=external_id,
            email=email,
            phone=phone,
            first_name=_str(buyer.get("first_name")),
            last_name=_str(buyer.get("last_name")),
            complete=False,
        )
    ident = _dict(info.get("identification"))
    doc_type = _str(ident.get("type"))
    doc_type = doc_type.upper() if doc_type else None
    doc_number = _str(ident.get("number"))
    cust_type = _attribute(info, "cust_type")
    cust_type = cust_type.upper() if cust_type else None
    person_type: Literal["person", "company"] | None
    if cust_type in COMPANY_CUST_TYPES:
        person_type = "company"
    elif cust_type in PERSON_CUST_TYPES:
        person_type = "person"
    elif doc_type is not None:
        person_type = "company" if doc_type in COMPANY_DOC_TYPES else "person"
    else:
        person_type = None
    name = _str(info.get("name"))
    last_name = _str(info.get("last_name"))
    address_raw = _dict(info.get("address"))
    street = " ".join(
        p
        for p in (_str(address_raw.get("street_name")), _str(address_raw.get("street_number")))
        if p
    )
    state = address_raw.get("state")
    address = Address(
        street=street or None,
        city=_str(address_raw.get("city_name")),
        state=_str(_dict(state).get("name")) if isinstance(state, dict) else _str(state),
        country=_str(address_raw.get("country_id")),
        postal_code=_str(address_raw.get("zip_code")),
    )
    has_address = any(address.model_dump().values())
    company = person_type == "company"
    complete = bool(doc_type and doc_number and person_type and name)
    document = _dict(billing_document)
    return BuyerIdentity(
        external_id=external_id or _str(_dict(document.get("buyer")).get("cust_id")),
        doc_type=doc_type,
        doc_number=doc_number,
        person_type=person_type,
        first_name=None if company else name,
        last_name=None if company else last_name,
        company_name=name if company else None,
        email=email,
        phone=phone,
        address=address if has_address else None,
        complete=complete,
    )


def map_order(
    order: dict[str, Any], billing_document: Any = None, *, billing_fetched: bool = False
) -> Order:
    # Mercado Libre writes ids as JSON integers; text in another spelling is refused, so
    # no order ever gets a second external id.
    order_id = canonical_id(order.get("id"))
    seller_id = _str(_dict(order.get("seller")).get("id"))
    if order_id is None or seller_id is None:
        raise DataError(
            "Mercado Libre order without a valid id or seller",
            code="bad_order",
            field="id" if order_id is None else "seller.id",
        )
    lines = map_lines(order)
    total = order.get("total_amount")
    total_amount = (
        money(total, field="total_amount")
        if total is not None
        else sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    )
    payments = map_payments(order)
    raw_status = order.get("status")
    context = _dict(order.get("context"))
    tags = [str(t) for t in order.get("tags") or [] if t is not None]
    return Order(
        connector=CONNECTOR,
        external_id=order_id,
        account_id=seller_id,
        pack_id=_str(order.get("pack_id")),
        status=map_status(raw_status),
        raw_status=str(raw_status),
        currency=_str(order.get("currency_id")) or "COP",
        site=_str(context.get("site")) or _str(order.get("site_id")),
        created_at=parse_time(order.get("date_created")),
        closed_at=parse_time(order.get("date_closed")),
        updated_at=parse_time(order.get("date_last_updated"))
        or parse_time(order.get("last_updated")),
        lines=lines,
        total_amount=total_amount,
        paid_amount=optional_money(order.get("paid_amount"), field="paid_amount"),
        shipping_cost=buyer_paid_shipping(order, payments),
        # Mercado Libre Colombia publishes final prices: IVA is included in unit_price.
        prices_include_tax=True,
        buyer=map_buyer(order, billing_document, fetched=billing_fetched),
        payments=payments,
        tags=tags,
        fraud_suspected=FRAUD_TAG in tags,
    )


def billing_info_id(order: dict[str, Any]) -> str | None:
    return _str(_dict(_dict(order.get("buyer")).get("billing_info")).get("id"))
