"""What the Siigo sandbox remembers: companies with their catalogs, tokens, customers,
products and invoices. In memory, one instance per app; ``reset()`` forgets it all."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from fastapi import Response

from connectors.siigo import wire

#: Colombia keeps UTC-5 all year (no daylight saving): Siigo's "today" for invoice dates.
COLOMBIA = timezone(timedelta(hours=-5), "America/Bogota")
DOC_URL = "https://developer.siigo.com/introduction/codigos-de-error/"

Json = dict[str, Any]


class SiigoApiError(Exception):
    """Answered as Siigo's error body ``{"Status", "Errors": [...]}``."""

    def __init__(self, status: int, code: str, message: str, params: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.params = list(params)

    def body(self) -> Json:
        return error_body(self.status, self.code, self.message, self.params)


def error_body(status: int, code: str, message: str, params: Sequence[str] = ()) -> Json:
    return {
        "Status": status,
        "Errors": [
            {
                "Code": code,
                "Message": message,
                "Params": list(params),
                "Detail": f"Check the API documentation: {DOC_URL}{code}",
            }
        ],
    }


def siigo_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with exact Decimal numbers, as Siigo writes amounts."""
    return Response(
        content=wire.dumps(data),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class InvoiceRecord:
    invoice: Json
    request_body: Any
    idempotency_key: str | None
    seq: int


@dataclass
class Company:
    key: str
    username: str
    access_key: str = field(repr=False)
    mode: str
    document_types: dict[int, Json] = field(default_factory=dict)
    payment_types: dict[int, Json] = field(default_factory=dict)
    taxes: dict[int, Json] = field(default_factory=dict)
    users: dict[int, Json] = field(default_factory=dict)
    products: dict[str, Json] = field(default_factory=dict)
    customers: dict[str, Json] = field(default_factory=dict)
    invoices: dict[str, InvoiceRecord] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    idempotency_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    #: Monotonic times of the requests counted in the rate-limit window.
    hits: deque[float] = field(default_factory=deque)

    def product_by_code(self, code: str) -> Json | None:
        for product in self.products.values():
            if product["code"] == code:
                return product
        return None

    def customer_by_identification(self, identification: str, branch_office: int) -> Json | None:
        for customer in self.customers.values():
            if (
                customer["identification"] == identification
                and customer["branch_office"] == branch_office
            ):
                return customer
        return None

    def invoice_list(self) -> list[Json]:
        records = sorted(self.invoices.values(), key=lambda r: r.seq)
        return [r.invoice for r in records]

    def summary(self) -> Json:
        fv = [d for d in self.document_types.values() if d["type"] == "FV"]
        return {
            "company": self.username,
            "key": self.key,
            "username": self.username,
            "mode": self.mode,
            "document_types": list(self.document_types.values()),
            "document_type_id": fv[0]["id"],
            "payment_types": list(self.payment_types.values()),
            "payment_type_id": next(
                p["id"] for p in self.payment_types.values() if not p["due_date"]
            ),
            "taxes": list(self.taxes.values()),
            "tax_ids": {t["name"]: t["id"] for t in self.taxes.values()},
            "users": list(self.users.values()),
            "seller_id": next(u["id"] for u in self.users.values() if u["active"]),
        }


class SiigoState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.companies: dict[str, Company] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self._ids = itertools.count(13000)
        self._seq = itertools.count(1)

    # --- time and ids ---------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def today_colombia(self) -> date:
        return datetime.fromtimestamp(self.clock(), COLOMBIA).date()

    def next_id(self) -> int:
        return next(self._ids)

    def next_seq(self) -> int:
        return next(self._seq)

    # --- companies and tokens -------------------------------------------------------

    def company(self, ref: str | None) -> Company | None:
        if ref is None:
            return None
        found = self.companies.get(ref)
        if found is not None:
            return found
        return next((c for c in self.companies.values() if c.key == ref), None)

    def create_company(self, username: str, access_key: str, mode: str) -> Company:
        company = Company(
            key=str(uuid.uuid4()), username=username, access_key=access_key, mode=mode
        )
        _seed_catalogs(self, company)
        self.companies[username] = company
        return company

    def issue_token(self, company: Company, lifetime: float) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = (company.username, self.clock() + lifetime)
        return token

    def company_for_token(self, token: str | None) -> Company | None:
        if not token:
            return None
        entry = self.tokens.get(token)
        if entry is None:
            return None
        username, expires_at = entry
        if self.clock() >= expires_at:
            return None
        return self.companies.get(username)

    def expire_tokens(self, company: Company | None = None) -> int:
        expired = 0
        for token, (username, _) in list(self.tokens.items()):
            if company is None or username == company.username:
                del self.tokens[token]
                expired += 1
        return expired

    def find_invoice(self, invoice_id: str) -> tuple[Company, InvoiceRecord] | None:
        for company in self.companies.values():
            record = company.invoices.get(invoice_id)
            if record is not None:
                return company, record
        return None


def _seed_catalogs(state: SiigoState, company: Company) -> None:
    """A company as Siigo Nube sets one up: an electronic and a non-electronic sales
    invoice type, common payment types, IVA 19 % / 5 % / 0 %, Impoconsumo 8 %, ReteIVA and
    two users (one inactive)."""
    for code, name, electronic in (
        ("1", "Factura electrónica de venta", "ElectronicInvoice"),
        ("2", "Factura de venta", "NoElectronic"),
    ):
        doc_id = state.next_id()
        company.document_types[doc_id] = {
            "id": doc_id,
            "code": code,
            "name": name,
            "description": name,
            "type": "FV",
            "active": True,
            "seller_by_item": False,
            "cost_center": False,
            "cost_center_mandatory": False,
            "automatic_number": True,
            "consecutive": 1,
            "discount_type": "Value",
            "decimals": True,
            "advance_payment": False,
            "reteiva": True,
            "reteica": True,
            "self_withholding": False,
            "self_withholding_limit": 0,
            "electronic_type": electronic,
            "cargo_transportation": False,
            "healthcare_company": False,
            "customer_by_item": False,
        }
    for name, kind, due_date in (
        ("Efectivo", "Cartera", False),
        ("Tarjeta débito", "Cartera", False),
        ("Crédito", "Cartera", True),
    ):
        pid = state.next_id()
        company.payment_types[pid] = {
            "id": pid,
            "name": name,
            "type": kind,
            "active": True,
            "due_date": due_date,
        }
    for name, kind, pct in (
        ("IVA 19%", "IVA", "19"),
        ("IVA 5%", "IVA", "5"),
        ("IVA 0%", "IVA", "0"),
        ("Impoconsumo 8%", "Impoconsumo", "8"),
        ("ReteIVA 15%", "ReteIVA", "15"),
    ):
        tid = state.next_id()
        company.taxes[tid] = {
            "id": tid,
            "name": name,
            "type": kind,
            "percentage": Decimal(pct),
            "active": True,
        }
    for first, last, active in (("Vendedor", "Principal", True), ("Antiguo", "Vendedor", False)):
        uid = state.next_id()
        company.users[uid] = {
            "id": uid,
            "username": f"{first.lower()}{uid}@{company.key[:8]}.example",
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}{uid}@{company.key[:8]}.example",
            "active": active,
            "identification": str(80000000 + uid),
        }


def paginate(items: Sequence[Json], page: int, page_size: int, href: Callable[[int], str]) -> Json:
    """Siigo's paged envelope: ``pagination``, ``results`` and ``_links``."""
    total = len(items)
    start = (page - 1) * page_size
    links: Json = {"self": {"href": href(page)}}
    if page > 1:
        links["previous"] = {"href": href(page - 1)}
    if page * page_size < total:
        links["next"] = {"href": href(page + 1)}
    return {
        "pagination": {"page": page, "page_size": page_size, "total_results": total},
        "results": list(items[start : start + page_size]),
        "_links": links,
    }


def in_range(value: str | None, start: str | None, end: str | None) -> bool:
    """Whether a date or UTC timestamp ``value`` lies in ``[start, end]``; a bound given as
    a date compares the value's date."""
    if start is None and end is None:
        return True
    if value is None:
        return False
    for bound, is_start in ((start, True), (end, False)):
        if bound is None:
            continue
        if len(bound) == 10:
            mine: Any = value[:10]
            theirs: Any = bound
        else:
            mine = _parse_moment(value)
            theirs = _parse_moment(bound)
        if (is_start and mine < theirs) or (not is_start and mine > theirs):
            return False
    return True


def _parse_moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_date_filter(name: str, value: str | None) -> str | None:
    """``yyyy-MM-dd`` or ``yyyy-MM-ddTHH:mm:ssZ``, else ``invalid_date``."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            date.fromisoformat(value)
        else:
            _parse_moment(value)
    except ValueError:
        raise SiigoApiError(
            400, "invalid_date", f"The field {name} has an invalid date format", [name]
        ) from None
    return value
