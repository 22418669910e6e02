"""The sandbox's real routes: the subset of ``api.siigo.com`` the product uses, with
Siigo's headers, status codes, error bodies, paging and idempotency."""

import asyncio
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from connectors.sandbox_kit import Sandbox
from connectors.siigo import wire
from connectors.siigo.sandbox import customers, fields, rules
from connectors.siigo.sandbox.state import (
    Company,
    InvoiceRecord,
    Json,
    SiigoApiError,
    SiigoState,
    check_date_filter,
    in_range,
    paginate,
    siigo_json,
)
from connectors.siigo.schemas import IDEMPOTENCY_KEY_RE, PARTNER_ID_RE

#: ⚠ Siigo documents no marker for a replay; the sandbox answers one with 200 (a create is
#: 201) and this header, and the connector reads either.
REPLAY_HEADER = "Idempotent-Replayed"
DEFAULT_PAGE_SIZE = 25
MIN_PAGE_SIZE = 10
#: ⚠ Observed: below 10 is raised to 10, 50 is honoured; the maximum was never probed.
MAX_PAGE_SIZE = 100
DEFAULT_TOKEN_LIFETIME = 86400.0


def extra(sandbox: Sandbox, key: str, default: Any) -> Any:
    return (sandbox.config.model_extra or {}).get(key, default)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return wire.loads(raw)
    except ValueError:
        raise SiigoApiError(400, "invalid_type", "The body is not valid JSON") from None


def bearer(authorization: str | None) -> str | None:
    # The blueprint shows the bare token; real clients send "Bearer <jwt>". Both work.
    if not authorization:
        return None
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return authorization.strip()


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SiigoApiError(400, "invalid_type", f"{name} must be a number", [name]) from None


def paged(request: Request, items: list[Json]) -> Response:
    page = max(_int_param(request, "page", 1), 1)
    size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE)
    size = min(max(size, MIN_PAGE_SIZE), MAX_PAGE_SIZE)

    def href(number: int) -> str:
        return str(request.url.include_query_params(page=number, page_size=size))

    return siigo_json(paginate(items, page, size, href))


def api_router(state: SiigoState, sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    async def current_company(request: Request) -> Company:
        partner_id = request.headers.get("partner-id")
        if partner_id is None:
            raise SiigoApiError(
                400, "header_required", "The header Partner-Id is required", ["Partner-Id"]
            )
        if not PARTNER_ID_RE.fullmatch(partner_id):
            raise SiigoApiError(
                400,
                "invalid_partner_id",
                "Partner-Id must be 3 to 100 letters or digits, without spaces",
                ["Partner-Id"],
            )
        company = state.company_for_token(bearer(request.headers.get("authorization")))
        if company is None:
            raise SiigoApiError(401, "unauthorized", "The access token is invalid or has expired")
        return company

    CompanyDep = Annotated[Company, Depends(current_company)]

    # --- auth -------------------------------------------------------------------------

    @router.post("/auth")
    async def auth(request: Request) -> Response:
        # No Partner-Id check here: /auth answers without it (observed). Status 200 as
        # observed (the blueprint says 201).
        body = fields.obj(await read_json(request), "body")
        username = fields.text(body.get("username"), "username")
        access_key = fields.text(body.get("access_key"), "access_key")
        company = state.companies.get(username)
        if company is None or not secrets.compare_digest(
            access_key.encode(), company.access_key.encode()
        ):
            raise SiigoApiError(401, "unauthorized", "Invalid username or access_key")
        lifetime = float(extra(sandbox, "token_lifetime_seconds", DEFAULT_TOKEN_LIFETIME))
        return siigo_json(
            {
                "access_token": state.issue_token(company, lifetime),
                "expires_in": int(lifetime),
                "token_type": "Bearer",
                "scope": "SiigoAPI",
            }
        )

    # --- customers --------------------------------------------------------------------

    @router.get("/v1/customers")
    async def list_customers(request: Request, company: CompanyDep) -> Response:
        q = request.query_params
        identification = q.get("identification")
        branch = q.get("branch_office")
        created = (
            check_date_filter("created_start", q.get("created_start")),
            check_date_filter("created_end", q.get("created_end")),
        )
        updated = (
            check_date_filter("updated_start", q.get("updated_start")),
            check_date_filter("updated_end", q.get("updated_end")),
        )
        found = [
            c
            for c in company.customers.values()
            if (identification is None or c["identification"] == identification)
            and (branch is None or str(c["branch_office"]) == branch)
            and in_range(c["metadata"]["created"], *created)
            and in_range(c["metadata"]["last_updated"] or c["metadata"]["created"], *updated)
        ]
        return paged(request, found)

    @router.get("/v1/customers/{customer_id}")
    async def get_customer(customer_id: str, company: CompanyDep) -> Response:
        customer = company.customers.get(customer_id)
        if customer is None:
            raise SiigoApiError(404, "not_found", "The customer does not exist")
        return siigo_json(customer)

    @router.post("/v1/customers")
    async def create_customer(request: Request, company: CompanyDep) -> Response:
        customer = customers.build_customer(state, company, await read_json(request))
        company.customers[customer["id"]] = customer
        return siigo_json(customer, 201)

    # --- products and catalogs --------------------------------------------------------

    @router.get("/v1/products")
    async def list_products(request: Request, company: CompanyDep) -> Response:
        q = request.query_params
        code = q.get("code")
        ids = set(q["ids"].split(",")) if q.get("ids") else None
        found = [
            p
            for p in reversed(list(company.products.values()))  # newest first
            if (code is None or p["code"] == code) and (ids is None or p["id"] in ids)
        ]
        return paged(request, found)

    @router.get("/v1/products/{product_id}")
    async def get_product(product_id: str, company: CompanyDep) -> Response:
        product = company.products.get(product_id)
        if product is None:
            raise SiigoApiError(404, "not_found", "The product does not exist")
        return siigo_json(product)

    @router.get("/v1/document-types")
    async def document_types(request: Request, company: CompanyDep) -> Response:
        kind = request.query_params.get("type")
        if not kind:
            raise SiigoApiError(
                400, "parameter_required", "The parameter type is required", ["type"]
            )
        return siigo_json([d for d in company.document_types.values() if d["type"] == kind])

    @router.get("/v1/payment-types")
    async def payment_types(request: Request, company: CompanyDep) -> Response:
        kind = request.query_params.get("document_type")
        if not kind:
            raise SiigoApiError(
                400,
                "parameter_required",
                "The parameter document_type is required (FV, NC or RC)",
                ["document_type"],
            )
        return siigo_json(list(company.payment_types.values()) if kind == "FV" else [])

    @router.get("/v1/taxes")
    async def taxes(company: CompanyDep) -> Response:
        return siigo_json(list(company.taxes.values()))

    @router.get("/v1/users")
    async def users(request: Request, company: CompanyDep) -> Response:
        return paged(request, list(company.users.values()))

    # --- invoices ---------------------------------------------------------------------

    @router.post("/v1/invoices")
    async def create_invoice(request: Request, company: CompanyDep) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
            # ⚠ 30 characters (section "Idempotencia"; the error text says 32).
            raise SiigoApiError(
                400,
                "invalid_idempotency-key",
                "The Idempotency-Key must be alphanumeric, up to 30 characters",
                ["Idempotency-Key"],
            )
        body = await read_json(request)
        if key is None:
            return await commit_invoice(company, body, None)
        # One request per key at a time: a second POST with the same key waits and then
        # gets the invoice the first one created, never a second invoice.
        lock = company.idempotency_locks.setdefault(key, asyncio.Lock())
        async with lock:
            existing = company.idempotency.get(key)
            if existing is not None and existing in company.invoices:
                return siigo_json(
                    company.invoices[existing].invoice, 200, headers={REPLAY_HEADER: "true"}
                )
            return await commit_invoice(company, body, key)

    async def commit_invoice(company: Company, body: Any, key: str | None) -> Response:
        invoice, new_customer, doc = rules.build_invoice(state, company, body)
        # Siigo takes a while to create a document; yielding here lets concurrent requests
        # interleave as they would on the real service.
        await asyncio.sleep(float(extra(sandbox, "invoice_processing_ms", 0)) / 1000)
        if new_customer is not None:
            existing = company.customer_by_identification(
                new_customer["identification"], new_customer["branch_office"]
            )
            if existing is None:
                company.customers[new_customer["id"]] = new_customer
            else:
                invoice["customer"]["id"] = existing["id"]
        number = doc["consecutive"]
        doc["consecutive"] = number + 1
        invoice["number"] = number
        invoice["name"] = f"FV-{doc['code']}-{number}"
        company.invoices[invoice["id"]] = InvoiceRecord(
            invoice=invoice, request_body=body, idempotency_key=key, seq=state.next_seq()
        )
        if key is not None:
            company.idempotency[key] = invoice["id"]
        return siigo_json(invoice, 201)

    @router.get("/v1/invoices")
    async def list_invoices(request: Request, company: CompanyDep) -> Response:
        q = request.query_params
        ranges: list[tuple[Callable[[Json], str | None], str | None, str | None]] = [
            (lambda i: i["date"], *_dates(q, "date")),
            (lambda i: i["metadata"]["created"], *_dates(q, "created")),
            (
                lambda i: i["metadata"]["last_updated"] or i["metadata"]["created"],
                *_dates(q, "updated"),
            ),
        ]
        equals = {
            "name": lambda i: i["name"],
            "customer_identification": lambda i: i["customer"]["identification"],
            "customer_branch_office": lambda i: str(i["customer"]["branch_office"]),
            "document_id": lambda i: str(i["document"]["id"]),
        }
        found = [
            invoice
            for invoice in company.invoice_list()
            if all(in_range(get(invoice), start, end) for get, start, end in ranges)
            and all(q.get(name) is None or get(invoice) == q[name] for name, get in equals.items())
        ]
        return paged(request, found)

    @router.get("/v1/invoices/{invoice_id}")
    async def get_invoice(invoice_id: str, company: CompanyDep) -> Response:
        record = company.invoices.get(invoice_id)
        if record is None:
            raise SiigoApiError(404, "not_found", "The invoice does not exist")
        return siigo_json(record.invoice)

    return router


def _dates(q: Any, prefix: str) -> tuple[str | None, str | None]:
    return (
        check_date_filter(f"{prefix}_start", q.get(f"{prefix}_start")),
        check_date_filter(f"{prefix}_end", q.get(f"{prefix}_end")),
    )
