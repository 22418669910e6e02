"""Siigo request bodies built from the canonical models (no HTTP)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.errors import DataError
from connectors.models import Address, CustomerSpec, InvoiceItem, InvoicePayment
from connectors.siigo.schemas import customer_body, invoice_body, siigo_id_type
from tests.connectors.siigo.fixtures import blueprint_draft


def test_customer_body_for_a_person() -> None:
    body = customer_body(
        CustomerSpec(
            id_type="CC",
            identification="1.020.304.050",
            person_type="person",
            first_name="María José Gómez",
            email="mj@correo.example",
            phone="+57 300 123 4567",
            address=Address(street="Calle 1 # 2-3", postal_code="110111"),
        )
    )
    assert body["id_type"] == "13"
    assert body["identification"] == "1020304050"
    assert body["person_type"] == "Person"
    assert body["name"] == ["María", "José Gómez"]
    assert body["fiscal_responsibilities"] == [{"code": "R-99-PN"}]
    assert body["address"] == {
        "address": "Calle 1 # 2-3",
        "city": {"country_code": "CO", "state_code": "11", "city_code": "11001"},
        "postal_code": "110111",
    }
    assert body["phones"] == [{"indicative": "57", "number": "3001234567"}]
    assert body["contacts"] == [
        {
            "first_name": "María",
            "last_name": "José Gómez",
            "email": "mj@correo.example",
            "phone": {"indicative": "57", "number": "3001234567"},
        }
    ]


def test_customer_body_for_a_company_with_check_digit_and_city() -> None:
    body = customer_body(
        CustomerSpec(
            id_type="31",
            identification="900123456-7",
            person_type="company",
            company_name="Tienda SAS",
            state_code="05",
            city_code="05001",
        )
    )
    assert (body["identification"], body["check_digit"]) == ("900123456", "7")
    assert body["name"] == ["Tienda SAS"]
    assert body["person_type"] == "Company"
    assert body["address"]["address"] == "Sin dirección"
    assert body["address"]["city"]["city_code"] == "05001"
    assert body["contacts"] == [{"first_name": "Tienda SAS", "last_name": ""}]


@pytest.mark.parametrize(
    "spec",
    [
        CustomerSpec(
            id_type="XX", identification="1", person_type="person", first_name="A", last_name="B"
        ),
        CustomerSpec(id_type="13", identification="1020", person_type="person", first_name="Cher"),
        CustomerSpec(id_type="31", identification="900", person_type="company"),
        CustomerSpec(
            id_type="13", identification="abc", person_type="person", first_name="A", last_name="B"
        ),
    ],
)
def test_customer_body_refuses_what_siigo_would(spec: CustomerSpec) -> None:
    with pytest.raises(DataError):
        customer_body(spec)


def test_id_type_codes() -> None:
    assert [siigo_id_type(t) for t in ("CC", "nit", "CE", "PP", "13", "R-00-PN")] == [
        "13",
        "31",
        "22",
        "41",
        "13",
        "R-00-PN",
    ]


def test_money_decimals_are_checked_not_rounded() -> None:
    body = invoice_body(
        blueprint_draft(
            items=[
                InvoiceItem(
                    code="X",
                    description="x",
                    quantity=Decimal("1.50"),
                    price=Decimal("8403.361345"),
                    discount=Decimal("0.10"),
                )
            ],
            payments=[InvoicePayment(payment_type="1", value=Decimal("12605.0"))],
        )
    )
    assert body["items"][0]["quantity"] == Decimal("1.5")
    assert body["items"][0]["price"] == Decimal("8403.361345")
    assert str(body["items"][0]["discount"]) == "0.10"
    assert str(body["payments"][0]["value"]) == "12605.00"
