"""Siigo's validation rules for sales invoices, from the blueprint's "Crear Factura" table
and its error-code section. The first broken rule is answered (Siigo can list several; one
is enough to be faithful to the code returned). The typed readers are in ``fields.py``, a
customer's rules in ``customers.py``."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NoReturn

from connectors.siigo.sandbox.customers import build_customer
from connectors.siigo.sandbox.fields import (
    array,
    decimals,
    fail,
    integer,
    iso_date,
    number,
    obj,
    text,
)
from connectors.siigo.sandbox.state import Company, Json, SiigoState, iso_utc
from connectors.siigo.schemas import plain
from connectors.siigo.totals import ItemTotals, invoice_total, item_totals, round2

MAX_ITEMS = 500
MAX_AMOUNT = Decimal("9999999999999.99")
ADDITIVE_TAXES = frozenset({"IVA", "Impoconsumo", "AdValorem"})
RETENTION_TAXES = frozenset({"ReteIVA", "ReteICA", "Autorretencion"})


def build_invoice(state: SiigoState, company: Company, body: Any) -> tuple[Json, Json | None, Json]:
    """Validate a ``POST /v1/invoices`` body. Returns the invoice to store, a customer to
    create with it (sent inline) or None, and the document type whose consecutive it uses.
    The number and name are filled in at commit."""
    body = obj(body, "body")
    doc = _document(company, body)
    electronic = doc["electronic_type"] != "NoElectronic"
    invoice_date = iso_date(body.get("date"), "date")
    today = state.today_colombia()
    if electronic and invoice_date < today:
        raise fail(
            "invalid_date",
            f"An electronic invoice can't be dated before today ({today.isoformat()}, Colombia)",
            "date",
        )
    customer, new_customer = _customer(state, company, body)
    seller = _catalog_ref(company.users, body.get("seller"), "seller")
    if doc["cost_center_mandatory"] and body.get("cost_center") is None:
        raise fail("parameter_required", "The document type requires a cost center", "cost_center")
    if body.get("cost_center") is not None and not doc["cost_center"]:
        raise fail(
            "document_settings", "The document type does not use cost centers", "cost_center"
        )
    if body.get("currency") is not None:
        raise fail(
            "invalid_currency", "Foreign currency is not enabled; omit currency for COP", "currency"
        )
    if body.get("number") is not None:
        # ⚠ Sending a number to a type with automatic numbering is refused here (stricter).
        raise fail(
            "document_settings", "The document type numbers invoices automatically", "number"
        )
    observations = text(body.get("observations"), "observations", required=False, max_len=4000)
    stamp = obj(body.get("stamp"), "stamp", required=False)
    send_stamp = stamp.get("send") is True
    if send_stamp and not electronic:
        raise fail("document_settings", "The document type is not electronic", "stamp.send")
    mail = obj(body.get("mail"), "mail", required=False)
    items, totals = _items(company, doc, body.get("items"))
    payments, paid = _payments(company, body.get("payments"), invoice_date)
    _retentions(company, body.get("retentions"))
    total = invoice_total(totals)
    if paid != total:
        raise fail(
            "invalid_total_payments",
            "The total payments must be equal to the total invoice. "
            f"The total invoice calculated is {format(plain(total), 'f')}",
            "payments",
        )
    invoice: Json = {
        "id": str(uuid.uuid4()),
        "document": {"id": doc["id"]},
        "number": None,
        "name": None,
        "date": invoice_date.isoformat(),
        "customer": {
            "id": customer["id"],
            "identification": customer["identification"],
            "branch_office": customer["branch_office"],
        },
        "seller": seller["id"],
        "total": total,
        "balance": Decimal("0"),
        "observations": observations,
        "items": items,
        "payments": payments,
        "stamp": {
            "status": "Accepted" if send_stamp else "Draft",
            "cufe": uuid.uuid4().hex * 2 if send_stamp else None,
            "observations": "",
            "errors": "",
        },
        "mail": {
            "status": "sent" if mail.get("send") is True else "not_sent",
            "observations": "",
        },
        "public_url": f"https://documentview.siigo.com/document?data={uuid.uuid4().hex}",
        "metadata": {"created": iso_utc(state.now()), "last_updated": None},
    }
    if body.get("additional_fields") is not None:
        invoice["additional_fields"] = obj(body.get("additional_fields"), "additional_fields")
    return invoice, new_customer, doc


def _document(company: Company, body: Json) -> Json:
    document = obj(body.get("document"), "document")
    if document.get("id") is None:
        raise fail("parameter_required", "The field document.id is required", "document.id")
    doc = company.document_types.get(integer(document.get("id"), "document.id"))
    if doc is None:
        raise fail("invalid_reference", "The document type does not exist", "document.id")
    if doc["type"] != "FV":
        raise fail("invalid_document", "The document type is not a sales invoice", "document.id")
    if not doc["active"]:
        raise fail("parameter_inactive", "The document type is inactive", "document.id")
    return doc


def _customer(state: SiigoState, company: Company, body: Json) -> tuple[Json, Json | None]:
    raw = obj(body.get("customer"), "customer")
    identification = text(raw.get("identification"), "customer.identification")
    branch = integer(raw.get("branch_office", 0), "customer.branch_office")
    found = company.customer_by_identification(identification, branch)
    if found is None and ("person_type" in raw or "name" in raw):
        # "Creación de un cliente desde la factura de venta": the full customer inline.
        new = build_customer(state, company, raw, prefix="customer.")
        return new, new
    if found is None:
        raise fail(
            "invalid_reference",
            f"The customer {identification} does not exist",
            "customer.identification",
        )
    if not found["active"]:
        raise fail("parameter_inactive", "The customer is inactive", "customer.identification")
    if not found["contacts"]:
        raise fail(
            "customer_settings",
            "The customer has no contacts; add one before creating documents",
            "customer.identification",
        )
    return found, None


def _catalog_ref(catalog: dict[int, Json], value: Any, field: str) -> Json:
    if value is None:
        raise fail("parameter_required", f"The field {field} is required", field)
    entry = catalog.get(integer(value, field))
    if entry is None:
        raise fail("invalid_reference", f"The {field} {value} does not exist", field)
    if not entry["active"]:
        raise fail("parameter_inactive", f"The {field} {value} is inactive", field)
    return entry


def _items(company: Company, doc: Json, raw_items: Any) -> tuple[list[Json], list[ItemTotals]]:
    raw_items = array(raw_items, "items")
    if len(raw_items) > MAX_ITEMS:
        raise fail("invalid_array", f"An invoice allows up to {MAX_ITEMS} items", "items")
    items, totals = [], []
    for raw in raw_items:
        item = obj(raw, "items")
        code = text(item.get("code"), "items.code")
        product = company.product_by_code(code)
        if product is None:
            raise fail("invalid_reference", f"The product {code} does not exist", "items.code")
        if not product["active"]:
            raise fail("parameter_inactive", f"The product {code} is inactive", "items.code")
        if item.get("warehouse") is not None:
            raise fail("warehouse_settings", "Warehouses are not enabled", "items.warehouse")
        if item.get("seller") is not None and not doc["seller_by_item"]:
            raise fail(
                "document_settings", "The document type has no seller per item", "items.seller"
            )
        if item.get("quantity") is None:
            raise fail(
                "parameter_required", "The field items.quantity is required", "items.quantity"
            )
        quantity = number(item["quantity"], "items.quantity")
        if quantity <= 0 or decimals(quantity) > 2:
            raise fail(
                "invalid_value",
                "items.quantity must be positive, 2 decimals at most",
                "items.quantity",
            )
        taxes = _item_taxes(company, item.get("taxes"))
        percentages = [t["percentage"] for t in taxes]
        price = _price(item, percentages)
        discount = Decimal(0)
        if item.get("discount") is not None:
            discount = number(item["discount"], "items.discount")
            if discount < 0 or decimals(discount) > 2:
                raise fail(
                    "invalid_amount",
                    "items.discount must be positive, 2 decimals at most",
                    "items.discount",
                )
            if doc["discount_type"] == "Percentage":
                discount = round2(quantity * price * discount / 100)
            if discount > quantity * price:
                raise fail(
                    "invalid_amount", "The discount exceeds the item value", "items.discount"
                )
        if price == 0:
            # A gift item: Siigo needs the real value and who bears the VAT.
            if item.get("tax_base") is None:
                _required("items.tax_base")
            number(item["tax_base"], "items.tax_base")
            if item.get("taxpayer") not in ("Customer", "Company"):
                raise fail(
                    "parameter_required",
                    "items.taxpayer must be Customer or Company",
                    "items.taxpayer",
                )
        item_total = item_totals(quantity, price, discount, percentages)
        totals.append(item_total)
        items.append(
            {
                "id": str(uuid.uuid4()),
                "code": code,
                "description": text(item.get("description"), "items.description", required=False)
                or product["name"],
                "quantity": quantity,
                "price": price,
                "discount": {
                    "percentage": (
                        Decimal(0)
                        if not quantity * price
                        else round2(discount * 100 / (quantity * price))
                    ),
                    "value": discount,
                },
                "taxes": [
                    {**_tax_out(tax), "value": value}
                    for tax, value in zip(taxes, item_total.taxes, strict=True)
                ],
                "total": item_total.total,
            }
        )
    return items, totals


def _required(field: str) -> NoReturn:
    raise fail("parameter_required", f"The field {field} is required", field)


def _price(item: Json, percentages: list[Decimal]) -> Decimal:
    if item.get("taxed_price") is not None:
        taxed = number(item["taxed_price"], "items.taxed_price")
        if taxed < 0 or decimals(taxed) > 2:
            raise fail(
                "invalid_amount",
                "items.taxed_price must be positive, 2 decimals at most",
                "items.taxed_price",
            )
        # ⚠ How Siigo backs the base price out of a tax-inclusive one is not documented;
        # dividing and keeping 6 decimals reproduces its example (10000 → 8403.36 + 1596.64).
        factor = 1 + sum(percentages, Decimal(0)) / 100
        return (taxed / factor).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    if item.get("price") is None:
        raise fail("parameter_required", "The field items.price is required", "items.price")
    price = number(item["price"], "items.price")
    if price < 0 or price > MAX_AMOUNT or decimals(price) > 6:
        raise fail(
            "invalid_amount", "items.price must be positive, 6 decimals at most", "items.price"
        )
    return price


def _item_taxes(company: Company, raw: Any) -> list[Json]:
    raw_taxes = array(raw, "items.taxes", required=False)
    if len(raw_taxes) > 3:
        raise fail("invalid_array", "An item allows up to 3 taxes", "items.taxes")
    taxes = []
    for entry in raw_taxes:
        tax = _catalog_ref(company.taxes, obj(entry, "items.taxes").get("id"), "items.taxes.id")
        if tax["type"] not in ADDITIVE_TAXES:
            raise fail("invalid_array", f"{tax['type']} can't go on an item", "items.taxes")
        taxes.append(tax)
    kinds = [t["type"] for t in taxes]
    if len(set(kinds)) != len(kinds):
        raise fail("invalid_array", "Two taxes of the same type on one item", "items.taxes")
    if "IVA" in kinds and "AdValorem" in kinds:
        raise fail("invalid_array", "IVA and AdValorem can't go together", "items.taxes")
    return taxes


def _tax_out(tax: Json) -> Json:
    return {k: tax[k] for k in ("id", "name", "type", "percentage")}


def _payments(company: Company, raw: Any, invoice_date: date) -> tuple[list[Json], Decimal]:
    raw_payments = array(raw, "payments")
    payments, paid = [], Decimal(0)
    for entry in raw_payments:
        payment = obj(entry, "payments")
        kind = _catalog_ref(company.payment_types, payment.get("id"), "payments.id")
        if payment.get("value") is None:
            raise fail(
                "parameter_required", "The field payments.value is required", "payments.value"
            )
        value = number(payment["value"], "payments.value")
        if value <= 0 or value > MAX_AMOUNT or decimals(value) > 2:
            raise fail(
                "invalid_amount",
                "payments.value must be positive, 2 decimals at most",
                "payments.value",
            )
        out: Json = {"id": kind["id"], "name": kind["name"], "value": value}
        if kind["due_date"]:
            if payment.get("due_date") is None:
                raise fail(
                    "parameter_required", "This payment type needs a due_date", "payments.due_date"
                )
            due = iso_date(payment["due_date"], "payments.due_date")
            if due < invoice_date:
                raise fail(
                    "invalid_date", "The due date is before the invoice date", "payments.due_date"
                )
            out["due_date"] = due.isoformat()
        payments.append(out)
        paid += value
    if len(payments) > 1 and any(company.payment_types[p["id"]]["due_date"] for p in payments):
        raise fail(
            "invalid_payment", "Only one payment is allowed when one has a due date", "payments"
        )
    return payments, paid


def _retentions(company: Company, raw: Any) -> None:
    # ⚠ Retentions are checked but left out of the total: the blueprint's total rule only
    # covers the items' taxes.
    for entry in array(raw, "retentions", required=False):
        tax = _catalog_ref(company.taxes, obj(entry, "retentions").get("id"), "retentions.id")
        if tax["type"] not in RETENTION_TAXES:
            raise fail("invalid_retentions", f"{tax['name']} is not a retention", "retentions")
