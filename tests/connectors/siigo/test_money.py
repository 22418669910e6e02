"""The money rule: what Siigo computes from our items is what the buyer paid."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.siigo.money import (
    CENT,
    GrossLine,
    item_total,
    round2,
    siigo_item_total,
    solve_bases,
    to_net_lines,
    unit_price_for,
)

RATES = st.sampled_from([Decimal(0), Decimal(5), Decimal(8), Decimal(16), Decimal(19)])
QUANTITIES = st.integers(min_value=1, max_value=50).map(Decimal)
# COP prices in whole pesos, as Mercado Libre Colombia charges them.
PESOS = st.integers(min_value=100, max_value=20_000_000).map(Decimal)
CENTS = st.integers(min_value=1, max_value=2_000_000_00).map(lambda c: Decimal(c) / 100)


def siigo_total(lines: list[GrossLine]) -> Decimal:
    net = to_net_lines(lines)
    return sum(
        (
            siigo_item_total(n.quantity, n.price, Decimal(0), lines[src].percentages)
            for src, n in net
        ),
        Decimal(0),
    )


def test_blueprint_example() -> None:
    # Siigo's own example: 10 x 100.00 - 50.00 discount at 19 % → 1130.50.
    assert siigo_item_total(Decimal(10), Decimal(100), Decimal(50), [Decimal(19)]) == Decimal(
        "1130.50"
    )


def test_half_up() -> None:
    assert round2(Decimal("0.005")) == Decimal("0.01")
    assert round2(Decimal("2.675")) == Decimal("2.68")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(QUANTITIES, PESOS, RATES), min_size=1, max_size=8),
    st.one_of(st.none(), st.tuples(PESOS, RATES)),
)
def test_invoice_total_is_what_the_buyer_paid(
    lines: list[tuple[Decimal, Decimal, Decimal]], shipping: tuple[Decimal, Decimal] | None
) -> None:
    gross = [GrossLine(q, q * p, (r,) if r else ()) for q, p, r in lines]
    if shipping:
        gross.append(GrossLine(Decimal(1), shipping[0], (shipping[1],) if shipping[1] else ()))
    paid = sum((g.gross for g in gross), Decimal(0))
    total = siigo_total(gross)
    # Never more than paid, and never a peso apart: at worst one cent short, which only
    # happens when no choice of bases reaches the exact total (see money.py).
    assert Decimal(0) <= paid - total <= CENT
    assert total.quantize(Decimal(1)) == paid.quantize(Decimal(1))
    # Exact whenever there is a multi-unit line or an untaxed line to place cents on.
    if any(g.quantity >= 2 or not g.percentages for g in gross):
        assert total == paid


@settings(max_examples=300, deadline=None)
@given(QUANTITIES, CENTS, RATES)
def test_exact_when_reachable(qty: Decimal, unit: Decimal, rate: Decimal) -> None:
    """A single line reaches its gross exactly whenever some base does."""
    pct = (rate,) if rate else ()
    gross = round2(qty * unit)
    (base,) = solve_bases([GrossLine(qty, gross, pct)])
    reachable = any(
        item_total(b, pct) == gross for b in (base + k * CENT for k in range(-3, 4)) if b >= 0
    )
    assert (item_total(base, pct) == gross) == reachable


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=9999).map(Decimal), CENTS)
def test_unit_price_gives_back_the_base(qty: Decimal, base: Decimal) -> None:
    price = unit_price_for(base, qty)
    assert price == price.quantize(Decimal("0.000001"))
    assert round2(qty * price) == base


def test_split_keeps_units_and_source() -> None:
    # 19 % and a gross that one line cannot reach: the solver splits the line.
    lines = [GrossLine(Decimal(3), Decimal(3) * Decimal(1006), (Decimal(19),))]
    (base,) = solve_bases(lines)
    assert item_total(base, (Decimal(19),)) != Decimal(3018)  # unreachable as one line
    net = to_net_lines(lines)
    assert len(net) == 2
    assert sum((n.quantity for _, n in net), Decimal(0)) == Decimal(3)
    assert all(src == 0 for src, _ in net)
    assert siigo_total(lines) == Decimal(3018)
