"""The Siigo sandbox's admin routes (``shared/SANDBOX.md`` "Siigo sandbox"), next to the
common ones the kit mounts. No auth; JSON in, JSON out."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from connectors.siigo.sandbox import fields
from connectors.siigo.sandbox.api import read_json
from connectors.siigo.sandbox.state import (
    Company,
    Json,
    SiigoApiError,
    SiigoState,
    iso_utc,
    siigo_json,
)

MODES = ("production", "test")
_CODE_RE = re.compile(r"^[^'\s]+$")


def admin_router(state: SiigoState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])

    def company_or_404(ref: Any) -> Company:
        company = state.company(ref if isinstance(ref, str) else None)
        if company is None:
            raise SiigoApiError(404, "not_found", f"No company {ref!r}", ["company"])
        return company

    def companies(ref: str | None) -> list[Company]:
        return [company_or_404(ref)] if ref else list(state.companies.values())

    @router.post("/companies")
    async def create_company(request: Request) -> Response:
        body = fields.obj(await read_json(request), "body")
        username = fields.text(body.get("username"), "username")
        access_key = fields.text(body.get("access_key"), "access_key")
        mode = body.get("mode", "production")
        if mode not in MODES:
            raise SiigoApiError(400, "invalid_value", "mode is production or test", ["mode"])
        if username in state.companies:
            raise SiigoApiError(409, "already_exists", f"{username} exists", ["username"])
        return siigo_json(state.create_company(username, access_key, mode).summary(), 201)

    @router.get("/companies")
    async def list_companies() -> Response:
        return siigo_json([c.summary() for c in state.companies.values()])

    @router.post("/products")
    async def create_product(request: Request) -> Response:
        body = fields.obj(await read_json(request), "body")
        company = company_or_404(body.get("company"))
        code = fields.text(body.get("code"), "code")
        if not _CODE_RE.fullmatch(code):
            raise SiigoApiError(400, "invalid_code", "No quotes or spaces in a code", ["code"])
        if company.product_by_code(code) is not None:
            raise SiigoApiError(400, "already_exists", f"The product {code} exists", ["code"])
        taxes = []
        for ref in fields.array(body.get("taxes"), "taxes", required=False):
            tax_id = ref.get("id") if isinstance(ref, dict) else ref
            tax = company.taxes.get(fields.integer(tax_id, "taxes"))
            if tax is None:
                raise SiigoApiError(400, "invalid_reference", f"No tax {tax_id}", ["taxes"])
            taxes.append({k: tax[k] for k in ("id", "name", "type", "percentage")})
        product: Json = {
            "id": str(uuid.uuid4()),
            "code": code,
            "name": fields.text(body.get("name"), "name"),
            "account_group": {"id": 1253, "name": "Productos"},
            "type": body.get("type", "Product"),
            "stock_control": False,
            "active": body.get("active", True) is not False,
            "tax_classification": "Taxed" if taxes else "Excluded",
            "tax_included": False,
            "tax_consumption_value": 0,
            "taxes": taxes,
            "prices": [],
            "unit": {"code": "94", "name": "unidad"},
            "unit_label": "unidad",
            "reference": str(body.get("reference") or ""),
            "description": str(body.get("description") or ""),
            "additional_fields": {},
            "available_quantity": 0,
            "warehouses": [],
            "metadata": {"created": iso_utc(state.now()), "last_updated": None},
        }
        if body.get("price") is not None:
            price = fields.number(body["price"], "price")
            product["prices"] = [
                {
                    "currency_code": "COP",
                    "price_list": [{"position": 1, "name": "Precio de venta 1", "value": price}],
                }
            ]
        company.products[product["id"]] = product
        return siigo_json(product, 201)

    @router.get("/invoices")
    async def list_invoices(company: str | None = None) -> Response:
        return siigo_json(
            [
                {
                    "company": c.username,
                    "invoice": record.invoice,
                    "request_body": record.request_body,
                    "idempotency_key": record.idempotency_key,
                }
                for c in companies(company)
                for record in sorted(c.invoices.values(), key=lambda r: r.seq)
            ]
        )

    @router.patch("/invoices/{invoice_id}")
    async def edit_invoice(invoice_id: str, request: Request) -> Response:
        found = state.find_invoice(invoice_id)
        if found is None:
            raise SiigoApiError(404, "not_found", "The invoice does not exist")
        changes = fields.obj(await read_json(request), "body")
        invoice = found[1].invoice
        _merge(invoice, {k: v for k, v in changes.items() if k != "id"})
        invoice["metadata"]["last_updated"] = iso_utc(state.now())
        return siigo_json(invoice)

    @router.delete("/invoices/{invoice_id}")
    async def delete_invoice(invoice_id: str) -> Response:
        found = state.find_invoice(invoice_id)
        if found is None:
            raise SiigoApiError(404, "not_found", "The invoice does not exist")
        company, record = found
        del company.invoices[invoice_id]
        # ⚠ Whether Siigo forgets a deleted document's Idempotency-Key is not documented;
        # here it does, so the same key would create a new invoice.
        if record.idempotency_key is not None:
            company.idempotency.pop(record.idempotency_key, None)
        return siigo_json({"id": invoice_id, "deleted": True})

    @router.get("/customers")
    async def list_customers(company: str | None = None) -> Response:
        return siigo_json(
            [
                {"company": c.username, **customer}
                for c in companies(company)
                for customer in c.customers.values()
            ]
        )

    @router.patch("/customers/{customer_id}")
    async def edit_customer(customer_id: str, request: Request) -> Response:
        changes = fields.obj(await read_json(request), "body")
        for company in state.companies.values():
            customer = company.customers.get(customer_id)
            if customer is not None:
                _merge(customer, {k: v for k, v in changes.items() if k != "id"})
                customer["metadata"]["last_updated"] = iso_utc(state.now())
                return siigo_json(customer)
        raise SiigoApiError(404, "not_found", "The customer does not exist")

    @router.post("/tokens/expire")
    async def expire_tokens(request: Request) -> Response:
        body = fields.obj(await read_json(request), "body", required=False)
        company = company_or_404(body["company"]) if body.get("company") else None
        return siigo_json({"expired": state.expire_tokens(company)})

    return router


def _merge(target: Json, changes: Json) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
