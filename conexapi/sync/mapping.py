"""What the product needs of an order's mapping into an ERP document.

Each ERP connector builds its own document (``ErpConnector.build_document``); the core
only deals in what a missing mapping means (the order parks in ``needs_mapping``, naming
what is missing, and resumes by itself once it exists) and in what the buyer paid.
"""

from __future__ import annotations

from decimal import Decimal

from connectors.documents import BuyerIncomplete, ErpDocument, MappingMissing, Mappings
from connectors.models import Order

__all__ = [
    "BuyerIncomplete",
    "ErpDocument",
    "MappingMissing",
    "Mappings",
    "paid_for_goods_and_shipping",
]


def paid_for_goods_and_shipping(order: Order) -> Decimal:
    return sum((ln.quantity * ln.unit_price for ln in order.lines), Decimal(0)) + (
        order.shipping_cost
    )
