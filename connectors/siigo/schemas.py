"""Siigo's wire shapes: the bodies we send, built from the canonical models, and the
catalogs and invoices we read back. Field facts follow ``specs/EXTERNAL_APIS.md`` §2."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import DataError
from connectors.models import CustomerSpec, Invoice, InvoiceDraft, Product

#: Marketplace document abbreviations → Siigo's ``id_type`` codes ("Parámetros para Colombia").
ID_TYPE_CODES: dict[str, str] = {
    "CC": "13",
    "NIT": "31",
    "CE": "22",
    "PP": "41",
    "PA": "41",
    "PASAPORTE": "41",
    "RC": "11",
    "TI": "12",
    "TE": "21",
    "DE": "42",
    "NITE": "50",
    "PEP": "47",
    "PPT": "48",
    "NUIP": "91",
    "SC": "89",
}
#: Every ``id_type`` code Siigo accepts for Colombian companies, with its name.
ID_TYPE_NAMES: dict[str, str] = {
    "13": "Cédula de ciudadanía",
    "31": "NIT",
    "22": "Cédula de extranjería",
    "42": "Documento de identificación extranjero",
    "50": "NIT de otro país",
    "R-00-PN": "No obligado a registrarse en el RUT PN",
    "91": "NUIP",
    "41": "Pasaporte",
    "47": "Permiso especial de permanencia PEP",
    "11": "Registro civil",
    "43": "Sin identificación del exterior o para uso definido por la DIAN",
    "21": "Tarjeta de extranjería",
    "12": "Tarjeta de identidad",
    "89": "Salvoconducto de permanencia",
    "48": "Permiso protección temporal PPT",
}
#: Id types whose identification is numeric, 3 to 13 digits.
NUMERIC_ID_TYPES = frozenset({"13", "31", "11"})
#: Where a customer lives when the marketplace does not say: Bogotá D.C.
DEFAULT_CITY = ("CO", "11", "11001")
DEFAULT_ADDRESS = "Sin dirección"
DEFAULT_FISCAL_RESPONSIBILITY = "R-99-PN"

IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,30}$")
PARTNER_ID_RE = re.compile(r"^[A-Za-z0-9]{3,100}$")
_NAME_MAX = 100
_CONTACT_NAME_MAX = 50
_DIGITS_MAX = 10


def siigo_id_type(code_or_abbreviation: str) -> str:
    """Siigo's ``id_type`` code for a code or a common abbreviation (``CC`` → ``13``)."""
    value = code_or_abbreviation.strip()
    code = ID_TYPE_CODES.get(value.upper(), value)
    if code not in ID_TYPE_NAMES:
        raise DataError(
            f"Unknown Siigo id_type {code_or_abbreviation!r}",
            code="invalid_id_type",
            field="id_type",
        )
    return code


def check_idempotency_key(key: str) -> str:
    # ⚠ The blueprint says 30 characters in "Idempotencia" and 32 under the error code;
    # the stricter 30 is enforced here, before anything is sent.
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise DataError(
            "The Idempotency-Key must be 1 to 30 letters or digits",
            code="invalid_idempotency-key",
            field="Idempotency-Key",
        )
    return key


# --- money ------------------------------------------------------------------------------


def exact(value: Decimal, places: int, field: str) -> Decimal:
    """``value`` with at most ``places`` decimals, refused (not rounded) when it has more:
    a silently rounded price or payment would change the invoice."""
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum)
    if rounded != value:
        raise DataError(
            f"{field} allows at most {places} decimals, got {value}",
            code="invalid_amount",
            field=field,
        )
    return rounded


def plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and without an exponent (``2.50`` → ``2.5``,
    ``1E+3`` → ``1000``)."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1))
    return normalized


# --- customers --------------------------------------------------------------------------


def _digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def _phone(raw: str | None) -> dict[str, str] | None:
    digits = _digits(raw)
    if not digits:
        return None
    if len(digits) > _DIGITS_MAX and digits.startswith("57"):
        digits = digits[2:]
    return {"indicative": "57", "number": digits[-_DIGITS_MAX:]}


def _names(spec: CustomerSpec) -> tuple[list[str], str, str]:
    """The ``name`` array, and a contact's first and last name."""
    first = (spec.first_name or "").strip()
    last = (spec.last_name or "").strip()
    company = (spec.company_name or "").strip()
    if spec.person_type == "company":
        name = company or " ".join(p for p in (first, last) if p)
        if not name:
            raise DataError("A company customer needs a name", code="invalid_name", field="name")
        return [name[:_NAME_MAX]], (first or name)[:_CONTACT_NAME_MAX], last[:_CONTACT_NAME_MAX]
    if not last:
        words = (first or company).split()
        if len(words) < 2:
            raise DataError(
                "A person customer needs a first and a last name",
                code="invalid_name",
                field="name",
            )
        first, last = words[0], " ".join(words[1:])
    # Siigo caps each name at 100 characters; a longer marketplace name is cut, not refused.
    return (
        [first[:_NAME_MAX], last[:_NAME_MAX]],
        first[:_CONTACT_NAME_MAX],
        last[:_CONTACT_NAME_MAX],
    )


def customer_body(spec: CustomerSpec) -> dict[str, Any]:
    """``POST /v1/customers`` for ``spec``; always with one contact, because Siigo cannot
    invoice a customer without contacts (``customer_settings``)."""
    id_type = siigo_id_type(spec.id_type)
    identification = spec.identification.strip()
    check_digit = None
    if id_type == "31" and "-" in identification:
        identification, check_digit = (part.strip() for part in identification.rsplit("-", 1))
    if id_type in NUMERIC_ID_TYPES:
        identification = _digits(identification)
    if not identification:
        raise DataError(
            "The customer has no identification",
            code="invalid_identification",
            field="identification",
        )
    name, contact_first, contact_last = _names(spec)
    country, state, city = DEFAULT_CITY
    if spec.state_code and spec.city_code:
        country, state, city = (spec.country_code or "CO"), spec.state_code, spec.city_code
    address = spec.address
    street = (address.street if address else None) or DEFAULT_ADDRESS
    body: dict[str, Any] = {
        "type": "Customer",
        "person_type": "Company" if spec.person_type == "company" else "Person",
        "id_type": id_type,
        "identification": identification,
        "name": name,
        "branch_office": 0,
        "active": True,
        "vat_responsible": False,
        "fiscal_responsibilities": [{"code": DEFAULT_FISCAL_RESPONSIBILITY}],
        "address": {
            "address": street[:256],
            "city": {"country_code": country, "state_code": state, "city_code": city},
        },
    }
    if check_digit and check_digit.isdigit() and len(check_digit) == 1:
        body["check_digit"] = check_digit
    postal = (address.postal_code if address else None) or ""
    postal = postal.replace(" ", "")
    if postal and len(postal) <= _DIGITS_MAX:
        body["address"]["postal_code"] = postal
    phone = _phone(spec.phone)
    if phone:
        body["phones"] = [phone]
    contact: dict[str, Any] = {"first_name": contact_first, "last_name": contact_last}
    if spec.email:
        contact["email"] = spec.email.strip()
    if phone:
        contact["phone"] = phone
    body["contacts"] = [contact]
    return body


# --- invoices ---------------------------------------------------------------------------


def _numeric_id(value: str, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{field} must be a Siigo numeric id, got {value!r}",
            code="invalid_reference",
            field=field,
        ) from None


def invoice_body(draft: InvoiceDraft) -> dict[str, Any]:
    """``POST /v1/invoices`` for ``draft``. Decimals are checked, never rounded: quantity 2
    decimals, price 6, discount and payments 2."""
    if draft.seller is None:
        raise DataError(
            "Siigo needs a seller on every invoice", code="parameter_required", field="seller"
        )
    if not draft.items:
        raise DataError("An invoice needs items", code="parameter_required", field="items")
    if not draft.payments:
        raise DataError("An invoice needs payments", code="parameter_required", field="payments")
    items = []
    for item in draft.items:
        line: dict[str, Any] = {
            "code": item.code,
            "description": item.description,
            "quantity": plain(exact(item.quantity, 2, "items.quantity")),
            "price": plain(exact(item.price, 6, "items.price")),
        }
        if item.discount:
            line["discount"] = exact(item.discount, 2, "items.discount")
        if item.tax_ids:
            line["taxes"] = [{"id": _numeric_id(t, "items.taxes.id")} for t in item.tax_ids]
        items.append(line)
    payments = []
    for payment in draft.payments:
        entry: dict[str, Any] = {
            "id": _numeric_id(payment.payment_type, "payments.id"),
            "value": exact(payment.value, 2, "payments.value"),
        }
        if payment.due_date is not None:
            entry["due_date"] = payment.due_date.isoformat()
        payments.append(entry)
    observations = draft.observations or ""
    if draft.reference and draft.reference not in observations:
        # The reference goes into the observations: additional_fields.purchase_order is
        # refused unless the document type enables it, and no list filter reads it anyway.
        observations = f"{observations}\n{draft.reference}".strip()
    body: dict[str, Any] = {
        "document": {"id": _numeric_id(draft.document_type, "document.id")},
        "date": draft.date.isoformat(),
        "customer": {
            "identification": draft.customer_identification,
            "branch_office": draft.customer_branch_office,
        },
        "seller": _numeric_id(draft.seller, "seller"),
        "stamp": {"send": draft.send_stamp},
        "mail": {"send": draft.send_mail},
        "items": items,
        "payments": payments,
    }
    if draft.cost_center is not None:
        body["cost_center"] = _numeric_id(draft.cost_center, "cost_center")
    if observations:
        if len(observations) > 4000:
            raise DataError(
                "Observations allow 4000 characters", code="length_max", field="observations"
            )
        body["observations"] = observations
    return body


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raise ValueError(f"not a number: {value!r}")


def parse_invoice(
    data: dict[str, Any],
    raw: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    replayed: bool = False,
) -> Invoice:
    """An ``Invoice`` from Siigo's invoice JSON (``data`` read with Decimal numbers,
    ``raw`` the same JSON with plain types, kept for storage)."""
    customer = data.get("customer") or {}
    stamp = data.get("stamp") or {}
    number = data.get("number")
    return Invoice(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        number=int(number) if number is not None else None,
        date=date.fromisoformat(str(data["date"])[:10]),
        customer_identification=str(customer.get("identification") or ""),
        total=_as_decimal(data.get("total", 0)),
        stamp_status=stamp.get("status") if isinstance(stamp, dict) else None,
        idempotency_key=idempotency_key,
        replayed=replayed,
        raw=raw,
    )


def parse_product(data: dict[str, Any]) -> Product:
    return Product(
        id=str(data["id"]),
        code=str(data["code"]),
        name=str(data.get("name") or ""),
        active=bool(data.get("active", True)),
        tax_ids=[str(t["id"]) for t in data.get("taxes") or [] if "id" in t],
    )


# --- catalogs ---------------------------------------------------------------------------


class _Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DocumentType(_Catalog):
    id: int
    code: str
    name: str = ""
    type: str = "FV"
    active: bool = True
    cost_center: bool = False
    cost_center_mandatory: bool = False
    automatic_number: bool = True
    consecutive: int | None = None
    discount_type: Literal["Percentage", "Value"] | None = None
    electronic_type: str | None = None


class PaymentType(_Catalog):
    id: int
    name: str
    type: str | None = None
    active: bool = True
    due_date: bool = False


class Tax(_Catalog):
    id: int
    name: str
    type: str
    percentage: Decimal
    active: bool = True


class User(_Catalog):
    id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    active: bool = True
    identification: str | None = None


class SiigoCatalogs(_Catalog):
    """What a pipeline's settings are checked against (document type, payment type,
    seller, taxes)."""

    document_types: list[DocumentType] = Field(default_factory=list)
    payment_types: list[PaymentType] = Field(default_factory=list)
    taxes: list[Tax] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)

    def tax_percentages(self) -> dict[str, Decimal]:
        """Tax id → percentage, the map :func:`connectors.siigo.totals.draft_total` takes."""
        return {str(tax.id): tax.percentage for tax in self.taxes}


__all__ = [
    "DEFAULT_CITY",
    "IDEMPOTENCY_KEY_RE",
    "ID_TYPE_CODES",
    "ID_TYPE_NAMES",
    "PARTNER_ID_RE",
    "DocumentType",
    "PaymentType",
    "SiigoCatalogs",
    "Tax",
    "User",
    "check_idempotency_key",
    "customer_body",
    "exact",
    "invoice_body",
    "parse_invoice",
    "parse_product",
    "plain",
    "siigo_id_type",
]
