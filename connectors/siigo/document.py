"""A canonical order → Siigo's customer and sales invoice, with the pipeline's settings and
the merchant's mappings.

The invoice states what the buyer paid, to the cent (:mod:`connectors.siigo.money`); buyer
document types become Siigo's identification type codes; shipping the buyer paid is a line
of its own.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from connectors.documents import (
    BuyerIncomplete,
    ErpDocument,
    MappingMissing,
    Mappings,
    resolve_codes,
)
from connectors.models import (
    Address,
    CustomerSpec,
    Invoice,
    InvoiceDraft,
    InvoiceItem,
    InvoicePayment,
    Order,
)
from connectors.siigo.money import GrossLine, to_net_lines
from connectors.siigo.pipeline import PipelineSettings

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


def map_invoice(
    order: Order,
    settings: PipelineSettings,
    mappings: Mappings,
    invoice_date: date,
) -> ErpDocument:
    """Build the invoice; its total equals what the buyer paid (see :mod:`money`)."""
    customer = map_customer(order, settings, mappings)
    codes, fallback = resolve_codes(
        order, mappings, settings.sku_fallback, settings.default_product_code
    )
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
    return ErpDocument(customer=customer, draft=draft, fallback_codes=tuple(fallback))


#: The observations :func:`map_invoice` writes on every invoice, which is how an invoice
#: names its order: Siigo's list cannot filter on our reference.
_REFERENCE = re.compile(r"\bVenta\s+(?P<connector>\S+)\s+orden\s+(?P<order>[A-Za-z0-9_-]+)")


def order_reference(invoice: Invoice, connector: str) -> str | None:
    """The ``connector`` order an invoice names in its text fields, if any."""
    raw = invoice.raw
    texts = [raw.get("observations")] + [v for k, v in raw.items() if k != "observations"]
    for text in texts:
        if not isinstance(text, str):
            continue
        for match in _REFERENCE.finditer(text):
            if match["connector"] == connector:
                return match["order"]
    return None
