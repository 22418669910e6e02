"""Canonical order → ERP customer and invoice, with the pipeline's settings and mappings.

A missing mapping raises :class:`MappingMissing` naming exactly what is missing; the order
parks in ``needs_mapping`` and resumes by itself once the mapping exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from conexapi.pipelines.schemas import PipelineSettings
from conexapi.sync.money import GrossLine, to_net_lines
from connectors.models import (
    Address,
    CustomerSpec,
    InvoiceDraft,
    InvoiceItem,
    InvoicePayment,
    Order,
)

#: Buyer document types (as marketplaces name them) → Siigo id_type codes.
DEFAULT_ID_TYPES = {
    "CC": "13",
    "NIT": "31",
    "CE": "22",
    "PP": "41",
    "PAS": "41",
    "PASAPORTE": "41",
    "TI": "12",
    "RC": "11",
    "PEP": "47",
    "PPT": "48",
    "NUIP": "91",
    "DIE": "42",
}


class MappingMissing(Exception):
    def __init__(self, kind: str, values: list[str], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.values = values
        self.message = message


class BuyerIncomplete(Exception):
    """The marketplace has not finished processing the buyer's fiscal data yet."""


@dataclass
class Mappings:
    sku: dict[str, str] = field(default_factory=dict)
    id_type: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MappedInvoice:
    customer: CustomerSpec
    draft: InvoiceDraft
    #: Codes that came from a fallback rule and must exist in the ERP.
    fallback_codes: tuple[str, ...]


def line_key(sku: str | None, item_id: str) -> str:
    """What a SKU mapping is keyed on: the seller's SKU, else the listing id."""
    return sku or item_id


def map_customer(order: Order, settings: PipelineSettings, mappings: Mappings) -> CustomerSpec:
    buyer = order.buyer
    if not buyer.complete or not buyer.doc_type or not buyer.doc_number:
        raise BuyerIncomplete(
            f"order {order.external_id}: the buyer's billing data is not available yet"
        )
    doc_type = buyer.doc_type.upper()
    id_type = mappings.id_type.get(doc_type) or DEFAULT_ID_TYPES.get(doc_type)
    if id_type is None:
        raise MappingMissing(
            "id_type",
            [doc_type],
            f"no ERP identification type for buyer document type {doc_type!r}",
        )
    identification = "".join(ch for ch in buyer.doc_number if ch.isalnum())
    person_type = buyer.person_type or ("company" if doc_type == "NIT" else "person")
    city = settings.default_city
    return CustomerSpec(
        id_type=id_type,
        identification=identification,
        person_type=person_type,
        first_name=buyer.first_name,
        last_name=buyer.last_name,
        company_name=buyer.company_name,
        email=buyer.email,
        phone=buyer.phone,
        address=buyer.address or Address(),
        country_code=city.country_code,
        state_code=city.state_code,
        city_code=city.city_code,
    )


def resolve_codes(
    order: Order, settings: PipelineSettings, mappings: Mappings
) -> tuple[list[str], list[str]]:
    """ERP product codes per line, and those that came from a fallback rule."""
    codes: list[str] = []
    fallback: list[str] = []
    missing: list[str] = []
    for line in order.lines:
        key = line_key(line.sku, line.item_id)
        code = mappings.sku.get(key)
        if code is None and settings.sku_fallback == "same_code" and line.sku:
            code = line.sku
            fallback.append(code)
        elif code is None and settings.sku_fallback == "default_product":
            code = settings.default_product_code
            if code:
                fallback.append(code)
        if code is None:
            missing.append(key)
            codes.append("")
        else:
            codes.append(code)
    if missing:
        raise MappingMissing(
            "sku",
            sorted(set(missing)),
            "no ERP product for marketplace SKU " + ", ".join(sorted(set(missing))),
        )
    return codes, fallback


def map_invoice(
    order: Order,
    settings: PipelineSettings,
    mappings: Mappings,
    invoice_date: date,
) -> MappedInvoice:
    """Build the invoice; its total equals what the buyer paid (see :mod:`money`)."""
    customer = map_customer(order, settings, mappings)
    codes, fallback = resolve_codes(order, settings, mappings)
    pct = (settings.tax_percentage,) if settings.tax_percentage else ()
    gross_lines = [
        GrossLine(line.quantity, line.quantity * line.unit_price, pct) for line in order.lines
    ]
    descriptions = [line.title[:250] for line in order.lines]
    tax_ids = [[settings.tax_id] if pct else [] for _ in order.lines]
    if order.shipping_cost > 0:
        if not settings.shipping_product_code:
            raise MappingMissing(
                "shipping",
                ["shipping"],
                "the buyer paid shipping but the pipeline has no shipping_product_code",
            )
        ship_pct = pct if settings.shipping_taxed else ()
        gross_lines.append(GrossLine(Decimal(1), order.shipping_cost, ship_pct))
        codes.append(settings.shipping_product_code)
        descriptions.append("Envío")
        tax_ids.append([settings.tax_id] if ship_pct else [])
    if not order.prices_include_tax:
        raise MappingMissing("tax_mode", ["prices_exclude_tax"], "tax-exclusive marketplace prices")
    net = to_net_lines(gross_lines)
    items = [
        InvoiceItem(
            code=codes[src],
            description=descriptions[src],
            quantity=n.quantity,
            price=n.price,
            tax_ids=tax_ids[src],
        )
        for src, n in net
    ]
    total = sum((n.total for _, n in net), Decimal(0))
    draft = InvoiceDraft(
        document_type=settings.document_type_id,
        date=invoice_date,
        customer_identification=customer.identification,
        seller=settings.seller_id,
        cost_center=settings.cost_center,
        observations=f"Venta {order.connector} orden {order.external_id}"
        + (f" (paquete {order.pack_id})" if order.pack_id else ""),
        items=items,
        payments=[
            InvoicePayment(
                payment_type=settings.payment_type_id, value=total, due_date=invoice_date
            )
        ],
        send_stamp=settings.send_stamp,
        send_mail=settings.send_mail,
        reference=order.external_id,
    )
    return MappedInvoice(customer=customer, draft=draft, fallback_codes=tuple(fallback))


def paid_for_goods_and_shipping(order: Order) -> Decimal:
    return sum((ln.quantity * ln.unit_price for ln in order.lines), Decimal(0)) + (
        order.shipping_cost
    )
