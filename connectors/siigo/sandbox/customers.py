"""Siigo's validation rules for a customer, from the blueprint's "Crear Cliente" table: the
identification, the address's city, contacts and fiscal responsibilities."""

from __future__ import annotations

import re
import uuid
from typing import Any

from connectors.siigo.sandbox.fields import array, fail, integer, obj, text
from connectors.siigo.sandbox.state import Company, Json, SiigoState, iso_utc
from connectors.siigo.schemas import ID_TYPE_NAMES, NUMERIC_ID_TYPES

#: ⚠ The blueprint says 10 contacts in the error text and 20 in the data structure; the
#: stricter 10 is enforced.
MAX_CONTACTS = 10
FISCAL_RESPONSIBILITIES = {
    "R-99-PN": "No aplica - Otros",
    "O-13": "Gran contribuyente",
    "O-15": "Autorretenedor",
    "O-23": "Agente de retención IVA",
    "O-47": "Régimen simple de tributación",
}
CITIES = {
    ("CO", "11", "11001"): ("Colombia", "Bogotá D.C.", "Bogotá"),
    ("CO", "05", "05001"): ("Colombia", "Antioquia", "Medellín"),
    ("CO", "76", "76001"): ("Colombia", "Valle del Cauca", "Cali"),
    ("CO", "08", "08001"): ("Colombia", "Atlántico", "Barranquilla"),
    ("CO", "13", "13001"): ("Colombia", "Bolívar", "Cartagena"),
    ("CO", "68", "68001"): ("Colombia", "Santander", "Bucaramanga"),
    ("CO", "19", "19001"): ("Colombia", "Cauca", "Popayán"),
}
_EMAIL_RE = re.compile(r"^([-+.]*\w)+[-+.]*@([\w-]+\.)+[\w-]{2,}$")
_IDENTIFICATION_RE = re.compile(r"^[\d\w][\d\w\-]+[\d\w]$|^[\d\w]$")


def build_customer(state: SiigoState, company: Company, body: Any, prefix: str = "") -> Json:
    """A new customer from a ``POST /v1/customers`` body (or a full customer inside an
    invoice), validated but not stored."""
    body = obj(body, prefix.rstrip(".") or "body")
    person_type = text(body.get("person_type"), f"{prefix}person_type")
    canonical = {"person": "Person", "company": "Company"}.get(person_type.lower())
    if canonical is None:
        raise fail("invalid_type", "person_type must be Person or Company", f"{prefix}person_type")
    id_type = text(body.get("id_type"), f"{prefix}id_type")
    if id_type not in ID_TYPE_NAMES:
        raise fail("invalid_reference", f"Unknown id_type {id_type}", f"{prefix}id_type")
    identification = text(body.get("identification"), f"{prefix}identification", max_len=50)
    if id_type in NUMERIC_ID_TYPES:
        valid = identification.isdigit() and 3 <= len(identification) <= 13
    else:
        valid = bool(_IDENTIFICATION_RE.fullmatch(identification)) and len(identification) <= 20
    if not valid:
        raise fail(
            "invalid_identification",
            "The identification is not valid for its id_type",
            f"{prefix}identification",
        )
    branch = integer(body.get("branch_office", 0), f"{prefix}branch_office")
    if not 0 <= branch <= 999:
        raise fail(
            "invalid_range", "branch_office must be between 0 and 999", f"{prefix}branch_office"
        )
    if company.customer_by_identification(identification, branch) is not None:
        raise fail(
            "already_exists",
            f"The customer {identification} already exists",
            f"{prefix}identification",
        )
    names = array(body.get("name"), f"{prefix}name")
    expected = 2 if canonical == "Person" else 1
    if len(names) != expected or not all(isinstance(n, str) and n.strip() for n in names):
        raise fail("invalid_array", f"A {canonical} needs {expected} name(s)", f"{prefix}name")
    if any(len(n) > 100 for n in names):
        raise fail("length_max", "Each name allows 100 characters", f"{prefix}name")
    address = obj(body.get("address"), f"{prefix}address")
    street = text(address.get("address"), f"{prefix}address.address", max_len=256)
    city = obj(address.get("city"), f"{prefix}address.city")
    codes = tuple(
        text(city.get(k), f"{prefix}address.city.{k}")
        for k in ("country_code", "state_code", "city_code")
    )
    names_found = CITIES.get((codes[0].upper(), codes[1], codes[2]), ("", "", ""))
    contacts = array(body.get("contacts"), f"{prefix}contacts")
    if len(contacts) > MAX_CONTACTS:
        raise fail("invalid_array", f"Up to {MAX_CONTACTS} contacts", f"{prefix}contacts")
    out_contacts = []
    for contact in contacts:
        contact = obj(contact, f"{prefix}contacts")
        first = text(contact.get("first_name"), f"{prefix}contacts.first_name", max_len=50)
        last = text(
            contact.get("last_name"), f"{prefix}contacts.last_name", required=False, max_len=50
        )
        email = text(contact.get("email"), f"{prefix}contacts.email", required=False, max_len=100)
        if email and not _EMAIL_RE.fullmatch(email):
            raise fail("invalid_email", "The email is not valid", f"{prefix}contacts.email")
        entry: Json = {"first_name": first, "last_name": last, "email": email}
        if contact.get("phone") is not None:
            entry["phone"] = _phone(contact.get("phone"), f"{prefix}contacts.phone")
        out_contacts.append(entry)
    phones = [
        _phone(p, f"{prefix}phones") for p in array(body.get("phones"), "phones", required=False)
    ]
    responsibilities = []
    for item in array(
        body.get("fiscal_responsibilities"), "fiscal_responsibilities", required=False
    ) or [{"code": "R-99-PN"}]:
        code = text(
            obj(item, "fiscal_responsibilities").get("code"),
            f"{prefix}fiscal_responsibilities.code",
        )
        if code not in FISCAL_RESPONSIBILITIES:
            raise fail(
                "invalid_reference",
                f"Unknown fiscal responsibility {code}",
                f"{prefix}fiscal_responsibilities.code",
            )
        responsibilities.append({"code": code, "name": FISCAL_RESPONSIBILITIES[code]})
    kind = body.get("type") or "Customer"
    if kind not in ("Customer", "Supplier", "Other"):
        raise fail("invalid_type", "type must be Customer, Supplier or Other", f"{prefix}type")
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "person_type": canonical,
        "id_type": {"code": id_type, "name": ID_TYPE_NAMES[id_type]},
        "identification": identification,
        "check_digit": str(body.get("check_digit") or ""),
        "name": names,
        "commercial_name": str(body.get("commercial_name") or ""),
        "branch_office": branch,
        "active": body.get("active", True) is not False,
        "vat_responsible": bool(body.get("vat_responsible", False)),
        "fiscal_responsibilities": responsibilities,
        "address": {
            "address": street,
            "city": {
                "country_code": codes[0],
                "country_name": names_found[0],
                "state_code": codes[1],
                "state_name": names_found[1],
                "city_code": codes[2],
                "city_name": names_found[2],
            },
            "postal_code": str(address.get("postal_code") or ""),
        },
        "phones": phones,
        "contacts": out_contacts,
        "comments": text(body.get("comments"), "comments", required=False, max_len=4000),
        "related_users": body.get("related_users") or {},
        "metadata": {"created": iso_utc(state.now()), "last_updated": None},
    }


def _phone(value: Any, field: str) -> Json:
    phone = obj(value, field)
    out = {}
    for key in ("indicative", "number", "extension"):
        raw = phone.get(key)
        if raw is None or raw == "":
            continue
        digits = str(raw)
        if not digits.isdigit() or len(digits) > 10:
            raise fail("invalid_value", f"{field}.{key} allows up to 10 digits", f"{field}.{key}")
        out[key] = digits
    return out
