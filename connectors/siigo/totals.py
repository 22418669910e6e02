"""Siigo's invoice total rule, as a pure function.

Siigo rejects an invoice whose payments do not add up to the total it computes itself
(``invalid_total_payments``), so the product must compute that total the same way before
it builds the payments; the sandbox checks invoices with this very function.

The blueprint (error code ``invalid_total_payments``) gives the rule per item::

    base  = round(quantity * price - discount, 2)
    tax   = round(base * percentage / 100, 2)        (each tax on the item)
    total = round(base + taxes, 2)

and the invoice total is the sum of the item totals.

Rounding mode: ``ROUND_HALF_UP`` (a half goes away from zero). The blueprint writes the rule
with ``Redondear``, the spreadsheet rounding Colombian accounting uses, which rounds halves
away from zero, and its worked examples agree with it: 10 x 100.00 - 50.00 at 19 % gives
950.00 / 180.50 / 1130.50; 2 x 1069.77 at 19 % gives an IVA of 406.51 and a total of
2546.05; a taxed price of 10000 at 19 % splits into 8403.36 + 1596.64. ⚠ None of those
examples lands exactly on a half cent, so half-up versus banker's rounding on a tie is
unconfirmed; half-up is the reading of "Redondear" and the one the sandbox enforces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from connectors.models import InvoiceDraft

CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


def round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ItemTotals:
    base: Decimal
    taxes: tuple[Decimal, ...]
    total: Decimal


def item_totals(
    quantity: Decimal,
    price: Decimal,
    discount: Decimal = ZERO,
    tax_percentages: Sequence[Decimal] = (),
) -> ItemTotals:
    """One item's base, its taxes (in the order given) and its total, Siigo's way.

    ``discount`` is a value (the document type's ``discount_type`` is ``Value``), not a
    percentage.
    """
    base = round2(quantity * price - discount)
    taxes = tuple(round2(base * pct / HUNDRED) for pct in tax_percentages)
    return ItemTotals(base=base, taxes=taxes, total=round2(base + sum(taxes, ZERO)))


def invoice_total(items: Iterable[ItemTotals]) -> Decimal:
    return sum((item.total for item in items), ZERO)


def draft_total(draft: InvoiceDraft, tax_percentages: Mapping[str, Decimal]) -> Decimal:
    """The total Siigo will compute for ``draft``; ``tax_percentages`` maps each tax id used
    by the items to its percentage (from the taxes catalog).

    Raises ``KeyError`` for a tax id that is not in the map.
    """
    return invoice_total(
        item_totals(
            item.quantity,
            item.price,
            item.discount,
            [tax_percentages[tax_id] for tax_id in item.tax_ids],
        )
        for item in draft.items
    )


__all__ = ["CENT", "ItemTotals", "draft_total", "invoice_total", "item_totals", "round2"]
