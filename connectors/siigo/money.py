"""From tax-inclusive marketplace prices to Siigo's tax-exclusive items, to the cent.

The rule
--------
Mercado Libre Colombia shows and charges prices with IVA included. Siigo takes a unit
``price`` without IVA and computes, per item (Siigo's blueprint, "Cálculo de totales")::

    base  = round(quantity * price - discount, 2)
    tax   = round(base * percentage / 100, 2)        for each tax of the item
    total = round(base + Σ tax, 2)

and refuses an invoice whose payments do not add up to Σ total (``invalid_total_payments``).
The invoice must state what the buyer paid: Σ total == Σ quantity * unit price paid
(+ shipping the buyer paid, as its own line).

Because ``tax`` is rounded, ``total(base)`` rises by 0.01 or 0.02 per cent of base, so about
one total in six (at 19 %) is not reachable by any base. We therefore choose bases in whole
cents, line by line, as the largest base whose total does not exceed the line's gross, then
spread the cents still missing over the lines whose next step adds exactly what is missing
(any exempt line always can). The result equals the buyer's payment to the cent whenever
any choice of bases can; otherwise (one taxed unit at an unreachable total) it is one cent
below it, which is still the same amount to the peso. ``price`` is then ``base / quantity``
at Siigo's six decimals, and we check that Siigo's own ``round(quantity * price, 2)``
gives back the chosen base.

Rounding is half-up (Siigo's "Redondear", whose examples round 0.005 up); the rule itself
is :mod:`connectors.siigo.totals`, the one the sandbox checks invoices with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

# Siigo's rule itself (rounding, per-item totals) has one copy, the sandbox's.
from connectors.siigo.totals import CENT, ZERO, item_totals, round2

MICRO = Decimal("0.000001")


def item_total(base: Decimal, percentages: Sequence[Decimal]) -> Decimal:
    """Siigo's total of one item from its base (already rounded to cents)."""
    return item_totals(Decimal(1), base, ZERO, percentages).total


def siigo_item_total(
    quantity: Decimal, price: Decimal, discount: Decimal, percentages: Sequence[Decimal]
) -> Decimal:
    return item_totals(quantity, price, discount, percentages).total


@dataclass(frozen=True)
class GrossLine:
    """One line as the buyer paid it: ``gross`` = quantity * tax-inclusive unit price."""

    quantity: Decimal
    gross: Decimal
    percentages: tuple[Decimal, ...]


@dataclass(frozen=True)
class NetLine:
    quantity: Decimal
    price: Decimal  # unit price without taxes, at most 6 decimals
    base: Decimal
    total: Decimal


def _largest_base_within(gross: Decimal, percentages: Sequence[Decimal]) -> Decimal:
    rate = 1 + sum(percentages, Decimal(0)) / 100
    base = (gross / rate).quantize(CENT, rounding=ROUND_FLOOR) + 3 * CENT
    while base > 0 and item_total(base, percentages) > gross:
        base -= CENT
    return max(base, Decimal(0))


def _step(line: GrossLine, base: Decimal, direction: int) -> Decimal:
    return item_total(base + direction * CENT, line.percentages) - item_total(
        base, line.percentages
    )


def solve_bases(lines: Sequence[GrossLine]) -> list[Decimal]:
    """Bases (in cents) whose Siigo totals add up to Σ gross, or one cent below."""
    bases = [_largest_base_within(line.gross, line.percentages) for line in lines]
    missing = sum((line.gross for line in lines), Decimal(0)) - sum(
        (item_total(b, line.percentages) for b, line in zip(bases, lines, strict=True)),
        Decimal(0),
    )
    # Each line is at most one cent short, so ``missing`` is a few cents at most.
    for i, line in enumerate(lines):
        while missing > 0:
            step = _step(line, bases[i], +1)
            if step > missing:
                break
            bases[i] += CENT
            missing -= step
    if missing > 0:
        # Trade: lower one line by a cent and raise another by two.
        for i, li in enumerate(lines):
            down = -_step(li, bases[i], -1) if bases[i] > 0 else None
            if down is None:
                continue
            for j, lj in enumerate(lines):
                if i == j:
                    continue
                up = _step(lj, bases[j], +1)
                if up - down == missing:
                    bases[i] -= CENT
                    bases[j] += CENT
                    missing = Decimal(0)
                    break
            if missing == 0:
                break
    return bases


def unit_price_for(base: Decimal, quantity: Decimal) -> Decimal:
    """A price with ≤ 6 decimals such that ``round(quantity * price, 2) == base``."""
    exact = base / quantity
    for rounding in (ROUND_HALF_UP, ROUND_FLOOR, ROUND_CEILING):
        price = exact.quantize(MICRO, rounding=rounding)
        if round2(quantity * price) == base:
            return price
    raise ValueError(f"no 6-decimal unit price gives base {base} for quantity {quantity}")


def _split_candidates(lines: Sequence[GrossLine]) -> list[int]:
    return [
        i
        for i, line in enumerate(lines)
        if line.quantity >= 2 and line.quantity == line.quantity.to_integral_value()
    ]


def to_net_lines(lines: Sequence[GrossLine]) -> list[tuple[int, NetLine]]:
    """Net items for Siigo, each with the index of the gross line it comes from.

    When the totals cannot meet the gross exactly, a multi-unit line is split into
    ``quantity - 1`` units and one unit (same product, same unit price paid), which gives
    the solver another line to place the missing cent on.
    """
    work: list[tuple[int, GrossLine]] = list(enumerate(lines))
    tried_split: set[int] = set()
    while True:
        bases = solve_bases([g for _, g in work])
        total = sum(
            (item_total(b, g.percentages) for b, (_, g) in zip(bases, work, strict=True)),
            Decimal(0),
        )
        gross = sum((g.gross for _, g in work), Decimal(0))
        splittable = [
            k for k in _split_candidates([g for _, g in work]) if work[k][0] not in tried_split
        ]
        if total == gross or not splittable:
            break
        k = splittable[0]
        src, line = work[k]
        tried_split.add(src)
        unit = line.gross / line.quantity
        work[k : k + 1] = [
            (src, GrossLine(line.quantity - 1, line.gross - unit, line.percentages)),
            (src, GrossLine(Decimal(1), unit, line.percentages)),
        ]
    out = []
    for (src, line), base in zip(work, bases, strict=True):
        price = unit_price_for(base, line.quantity)
        line_total = siigo_item_total(line.quantity, price, Decimal(0), line.percentages)
        out.append((src, NetLine(quantity=line.quantity, price=price, base=base, total=line_total)))
    return out
