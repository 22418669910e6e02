"""Realistic Colombian Mercado Libre orders, deterministic for a seed.

Orders come out in Mercado Libre's own ``GET /orders/{id}`` JSON with billing info in the
``/orders/billing-info/MCO/{id}`` shape: COP prices that already include IVA (as ML shows
them), CC consumers and NIT companies, multi-unit lines, packs (carts), discounts, shipping
the buyer pays, and cancellations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.mercadolibre.sandbox.buyers import Buyer
from connectors.mercadolibre.sandbox.catalogue import DEFAULT_CATALOGUE, CatalogueItem
from connectors.mercadolibre.sandbox.state import local_stamp, utc_stamp

PAYMENT_METHODS = (
    ("visa", "credit_card"),
    ("master", "credit_card"),
    ("debvisa", "debit_card"),
    ("pse", "bank_transfer"),
    ("efecty", "ticket"),
    ("account_money", "account_money"),
)
SHIPPING_COSTS = (Decimal(7900), Decimal(9900), Decimal(12900), Decimal(14900))
DISCOUNT_PCTS = (5, 10, 15, 20, 30)
PENDING_STATUSES = ("confirmed", "payment_required", "payment_in_process")


class SkuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str
    title: str | None = None
    #: Price before IVA; or give ``price``, already IVA-inclusive as ML would show it.
    net_price: Decimal | None = None
    price: Decimal | None = None
    iva_rate: Decimal = Decimal("0.19")


class Mix(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: The seller's catalogue: SKU strings or objects; empty means a built-in catalogue.
    skus: list[str | SkuSpec] = Field(default_factory=list)
    unmapped_sku_rate: float = 0.0
    cancelled_rate: float = 0.1
    pending_rate: float = 0.05
    partially_paid_rate: float = 0.0
    shipping_rate: float = 0.3
    nit_rate: float = 0.2
    discount_rate: float = 0.2
    pack_rate: float = 0.1
    multi_quantity_rate: float = 0.3
    #: Share of lines whose SKU is in ``seller_custom_field`` instead of ``seller_sku``.
    custom_field_rate: float = 0.2
    #: Share of orders whose billing info is still being processed (null fields).
    processing_rate: float = 0.0


@dataclass(frozen=True)
class Generated:
    order: dict[str, Any]
    billing_info: dict[str, Any]


def _number(value: Decimal) -> int | float:
    """JSON number for a peso amount: an int when whole (COP has no cents in practice)."""
    return int(value) if value == value.to_integral_value() else float(value)


def catalogue_from(mix: Mix, rng: random.Random) -> list[CatalogueItem]:
    if not mix.skus:
        return list(DEFAULT_CATALOGUE)
    items = []
    for entry in mix.skus:
        spec = SkuSpec(sku=entry) if isinstance(entry, str) else entry
        if spec.net_price is not None:
            net = spec.net_price
        elif spec.price is not None:
            net = (spec.price / (1 + spec.iva_rate)).quantize(Decimal("0.01"))
        else:
            net = Decimal(rng.randrange(80, 4000) * 100)
        item = CatalogueItem(spec.sku, spec.title or f"Producto {spec.sku}", net, spec.iva_rate)
        if spec.price is not None and spec.net_price is None:
            # Keep the caller's shown price exactly.
            item = _FixedPriceItem(
                item.sku, item.title, net, spec.iva_rate, item.category_id, fixed=spec.price
            )
        items.append(item)
    return items


@dataclass(frozen=True)
class _FixedPriceItem(CatalogueItem):
    fixed: Decimal = Decimal(0)

    @property
    def price(self) -> Decimal:
        return self.fixed


class OrderGenerator:
    def __init__(
        self,
        *,
        seller_id: int,
        seed: int,
        mix: Mix,
        start: datetime,
        end: datetime,
        taken_ids: set[int],
    ) -> None:
        self.rng = random.Random(seed)
        self.seller_id = seller_id
        self.mix = mix
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.taken = set(taken_ids)
        self.catalogue = catalogue_from(mix, self.rng)

    def _id(self, low: int, high: int) -> int:
        value = self.rng.randrange(low, high)
        while value in self.taken:
            value += 1
        self.taken.add(value)
        return value

    def _moment(self) -> datetime:
        span = max((self.end - self.start).total_seconds() - 600, 1.0)
        offset = self.rng.uniform(0, span)
        return (self.start + timedelta(seconds=offset)).replace(
            microsecond=self.rng.randrange(0, 1000) * 1000
        )

    def generate(self, count: int) -> list[Generated]:
        out: list[Generated] = []
        while len(out) < count:
            size = 1
            if self.rng.random() < self.mix.pack_rate and count - len(out) >= 2:
                size = min(self.rng.choice((2, 2, 3)), count - len(out))
            nit = self.rng.random() < self.mix.nit_rate
            processing = self.rng.random() < self.mix.processing_rate
            buyer = Buyer(self.rng, nit, processing)
            created = self._moment()
            pack_id = self._id(2_000_000_000_000_000, 2_999_999_999_999_999) if size > 1 else None
            status = self._status()
            for index in range(size):
                out.append(
                    self._order(
                        buyer,
                        created + timedelta(seconds=index),
                        pack_id,
                        status,
                        charge_shipping=index == 0,
                    )
                )
        return out

    def _status(self) -> str:
        roll = self.rng.random()
        mix = self.mix
        if roll < mix.cancelled_rate:
            return "cancelled"
        roll -= mix.cancelled_rate
        if roll < mix.pending_rate:
            return self.rng.choice(PENDING_STATUSES)
        roll -= mix.pending_rate
        if roll < mix.partially_paid_rate:
            return "partially_paid"
        return "paid"

    def _line(self) -> tuple[dict[str, Any], Decimal]:
        rng, mix = self.rng, self.mix
        product = rng.choice(self.catalogue)
        sku: str | None = product.sku
        if rng.random() < mix.unmapped_sku_rate:
            sku = f"NOMAP-{rng.randrange(1000, 9999)}"
        quantity = rng.choice((2, 2, 3, 4, 6)) if rng.random() < mix.multi_quantity_rate else 1
        full = product.price
        unit = full
        if rng.random() < mix.discount_rate:
            pct = rng.choice(DISCOUNT_PCTS)
            unit = max(
                (full * (100 - pct) / 100).quantize(Decimal(100), rounding=ROUND_HALF_UP),
                Decimal(100),
            )
        in_custom = rng.random() < mix.custom_field_rate
        fee_pct = Decimal(rng.choice((13, 15, 17))) / 100
        variation = self._id(170_000_000_000, 189_999_999_999) if rng.random() < 0.3 else None
        line = {
            "item": {
                "id": f"MCO{rng.randrange(500_000_000, 2_999_999_999)}",
                "title": product.title,
                "category_id": product.category_id,
                "variation_id": variation,
                "variation_attributes": [],
                "seller_sku": None if in_custom else sku,
                "seller_custom_field": sku if in_custom else None,
                "condition": "new",
                "warranty": "Garantía del vendedor: 3 meses",
            },
            "quantity": quantity,
            "unit_price": _number(unit),
            "full_unit_price": _number(full),
            "sale_fee": _number((unit * fee_pct).quantize(Decimal(1))),
            "listing_type_id": rng.choice(("gold_special", "gold_pro")),
            "currency_id": "COP",
            "base_currency_id": None,
            "base_exchange_rate": None,
            "differential_pricing_id": None,
            "manufacturing_days": None,
        }
        return line, unit * quantity

    def _order(
        self,
        buyer: Buyer,
        created: datetime,
        pack_id: int | None,
        status: str,
        *,
        charge_shipping: bool,
    ) -> Generated:
        rng, mix = self.rng, self.mix
        order_id = self._id(2_000_000_000_000_000, 2_999_999_999_999_999)
        lines = [self._line()]
        if rng.random() < 0.1:
            lines.append(self._line())
        total = sum((amount for _, amount in lines), Decimal(0))
        shipping = (
            rng.choice(SHIPPING_COSTS)
            if charge_shipping and rng.random() < mix.shipping_rate
            else Decimal(0)
        )
        closed = created + timedelta(seconds=rng.randrange(2, 180))
        latest = max(self.end - timedelta(seconds=1), closed)
        updated = closed + (latest - closed) * rng.random()
        method, payment_type = rng.choice(PAYMENT_METHODS)
        installments = rng.choice((1, 1, 1, 3, 6, 12)) if payment_type == "credit_card" else 1
        paid_now = status in ("paid", "cancelled", "partially_paid")
        payment_status = {
            "paid": "approved",
            "cancelled": rng.choice(("refunded", "cancelled")),
            "partially_paid": "approved",
            "payment_in_process": "in_process",
        }.get(status, "pending")
        charged = total + shipping
        if status == "partially_paid":
            charged = (charged / 2).quantize(Decimal(1))
        payment = {
            "id": self._id(60_000_000_000, 99_999_999_999),
            "order_id": order_id,
            "payer_id": buyer.id,
            "collector": {"id": self.seller_id},
            "card_id": None,
            "status": payment_status,
            "status_detail": "accredited" if payment_status == "approved" else None,
            "transaction_amount": _number(total if status != "partially_paid" else charged),
            "total_paid_amount": _number(charged),
            "shipping_cost": _number(shipping),
            "taxes_amount": 0,
            "coupon_amount": 0,
            "overpaid_amount": 0,
            "marketplace_fee": _number(
                sum(
                    (Decimal(str(line["sale_fee"])) * line["quantity"] for line, _ in lines),
                    Decimal(0),
                )
            ),
            "installments": installments,
            "installment_amount": _number((charged / installments).quantize(Decimal("0.01"))),
            "payment_method_id": method,
            "payment_type": payment_type,
            "operation_type": "regular_payment",
            "currency_id": "COP",
            "date_created": local_stamp(created),
            "date_approved": local_stamp(closed) if paid_now else None,
            "date_last_modified": local_stamp(updated),
            "site_id": "MCO",
            "reason": lines[0][0]["item"]["title"],
            "available_actions": ["refund"] if payment_status == "approved" else [],
        }
        tags = ["not_delivered"]
        if status == "paid":
            tags = ["paid", rng.choice(("not_delivered", "delivered"))]
        if shipping == 0 and rng.random() < 0.05:
            tags.append("no_shipping")
        if pack_id is not None:
            tags.append("pack_order")
        order: dict[str, Any] = {
            "id": order_id,
            "status": status,
            "status_detail": None,
            "date_created": local_stamp(created),
            "date_closed": local_stamp(closed) if paid_now else None,
            "last_updated": local_stamp(updated),
            "date_last_updated": utc_stamp(updated),
            "expiration_date": local_stamp(created + timedelta(days=28)),
            "pack_id": pack_id,
            "fulfilled": None,
            "buying_mode": "buy_equals_pay",
            "application_id": None,
            "hidden_for_seller": False,
            "order_items": [line for line, _ in lines],
            "total_amount": _number(total),
            "paid_amount": _number(charged if paid_now else Decimal(0)),
            "shipping_cost": _number(shipping),
            "currency_id": "COP",
            "coupon": {"id": None, "amount": 0},
            "taxes": {"amount": None, "currency_id": None, "id": None},
            "buyer": {
                "id": buyer.id,
                "nickname": buyer.nickname,
                "billing_info": {"id": buyer.billing_id},
            },
            "seller": {"id": self.seller_id},
            "payments": [payment],
            "feedback": {"sale": None, "purchase": None},
            "context": {"channel": "marketplace", "site": "MCO", "flows": []},
            "shipping": {"id": self._id(40_000_000_000, 49_999_999_999)},
            "mediations": [],
            "tags": tags,
            "comments": None,
        }
        if status == "cancelled":
            order["cancel_detail"] = {
                "group": "buyer",
                "code": "buyer_cancel_purchase",
                "description": "Buyer cancelled the purchase",
                "requested_by": "buyer",
                "date": local_stamp(updated),
                "application_id": None,
            }
        return Generated(order, buyer.billing_document(self.seller_id))
