"""Siigo's total rule (``connectors.siigo.totals``): the blueprint's examples and its
properties."""

from __future__ import annotations

import random
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.models import InvoiceDraft, InvoiceItem, InvoicePayment
from connectors.siigo.totals import draft_total, invoice_total, item_totals, round2

CENT = Decimal("0.01")

quantities = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2)
prices = st.decimals(min_value=Decimal(0), max_value=Decimal(10_000_000), places=6)
percentages = st.lists(
    st.sampled_from([Decimal(0), Decimal(5), Decimal(8), Decimal(19)]), max_size=3
)


@st.composite
def items(draw: st.DrawFn) -> tuple[Decimal, Decimal, Decimal, list[Decimal]]:
    quantity = draw(quantities)
    price = draw(prices)
    gross = (quantity * price).quantize(CENT)
    discount = draw(st.decimals(min_value=Decimal(0), max_value=gross, places=2))
    return quantity, price, discount, draw(percentages)


def test_blueprint_example() -> None:
    # "invalid_total_payments": 10 x 100.00 - 50.00 at 19 %.
    totals = item_totals(Decimal(10), Decimal("100.00"), Decimal("50.00"), [Decimal(19)])
    assert totals.base == Decimal("950.00")
    assert totals.taxes == (Decimal("180.50"),)
    assert totals.total == Decimal("1130.50")


def test_invoice_example() -> None:
    # The blueprint's invoice: 2 x 1069.77 at IVA 19 % → IVA 406.51, total 2546.05.
    totals = item_totals(Decimal(2), Decimal("1069.77"), Decimal(0), [Decimal(19)])
    assert totals.taxes == (Decimal("406.51"),)
    assert totals.total == Decimal("2546.05")


def test_half_cent_rounds_up() -> None:
    # base 0.05 at 19 % → 0.0095 → 0.01; base 2.50 at 5 % → 0.125 → 0.13 (not 0.12).
    assert item_totals(Decimal(1), Decimal("0.05"), Decimal(0), [Decimal(19)]).taxes == (
        Decimal("0.01"),
    )
    assert item_totals(Decimal(1), Decimal("2.50"), Decimal(0), [Decimal(5)]).taxes == (
        Decimal("0.13"),
    )
    # The base itself: 3 x 0.835 = 2.505 → 2.51.
    assert item_totals(Decimal(3), Decimal("0.835")).base == Decimal("2.51")


def test_draft_total_uses_each_items_taxes() -> None:
    draft = InvoiceDraft(
        document_type="1",
        date=date(2030, 1, 1),
        customer_identification="1",
        items=[
            InvoiceItem(
                code="A",
                description="a",
                quantity=Decimal(2),
                price=Decimal("1069.77"),
                tax_ids=["19"],
            ),
            InvoiceItem(
                code="B",
                description="b",
                quantity=Decimal(1),
                price=Decimal(1000),
                discount=Decimal(100),
                tax_ids=["5", "8"],
            ),
            InvoiceItem(code="C", description="c", quantity=Decimal(1), price=Decimal("0.5")),
        ],
        payments=[InvoicePayment(payment_type="1", value=Decimal(0))],
    )
    pct = {"19": Decimal(19), "5": Decimal(5), "8": Decimal(8)}
    # 2546.05 + (900 + 45 + 72) + 0.50
    assert draft_total(draft, pct) == Decimal("3563.55")
    with pytest.raises(KeyError):
        draft_total(draft, {"19": Decimal(19)})


@given(items())
def test_item_is_base_plus_taxes_to_the_cent(
    item: tuple[Decimal, Decimal, Decimal, list[Decimal]],
) -> None:
    quantity, price, discount, pcts = item
    totals = item_totals(quantity, price, discount, pcts)
    for value in (totals.base, *totals.taxes, totals.total):
        assert value == value.quantize(CENT)
    assert totals.total == totals.base + sum(totals.taxes, Decimal(0))
    assert abs(totals.base - (quantity * price - discount)) <= Decimal("0.005")
    for pct, tax in zip(pcts, totals.taxes, strict=True):
        assert abs(tax - totals.base * pct / 100) <= Decimal("0.005")


@given(items())
def test_base_is_the_nearest_cent_with_halves_up(
    item: tuple[Decimal, Decimal, Decimal, list[Decimal]],
) -> None:
    quantity, price, discount, _ = item
    exact = quantity * price - discount
    base = item_totals(quantity, price, discount).base
    below = exact.quantize(CENT, rounding=ROUND_FLOOR)
    above = exact.quantize(CENT, rounding=ROUND_CEILING)
    if exact - below == Decimal("0.005"):
        assert base == above
    elif exact - below < above - exact:
        assert base == below
    else:
        assert base == above


@given(st.lists(items(), max_size=20), st.randoms())
def test_invoice_total_is_the_sum_in_any_order(
    lines: list[tuple[Decimal, Decimal, Decimal, list[Decimal]]], rnd: random.Random
) -> None:
    totals = [item_totals(*line) for line in lines]
    total = invoice_total(totals)
    assert total == sum((t.total for t in totals), Decimal(0))
    shuffled = list(totals)
    rnd.shuffle(shuffled)
    assert invoice_total(shuffled) == total


@given(st.decimals(min_value=Decimal(-10_000), max_value=Decimal(10_000), places=3))
def test_round2_is_half_away_from_zero(value: Decimal) -> None:
    rounded = round2(value)
    assert abs(rounded - value) <= Decimal("0.005")
    if abs(value) % CENT == Decimal("0.005"):
        assert abs(rounded) > abs(value)
