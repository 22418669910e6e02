"""``SiigoConnector``: the ERP contract over Siigo Nube's API (``api.siigo.com``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from connectors.base import ErpConnector, RateLimiter
from connectors.documents import ErpDocument, Mappings, PipelineRules
from connectors.errors import DataError, PermanentError
from connectors.models import (
    CustomerRef,
    CustomerSpec,
    ErpCredentials,
    ErpSession,
    Invoice,
    InvoiceDraft,
    Order,
    Product,
    RateBudget,
)
from connectors.siigo import limits, wire
from connectors.siigo.client import SiigoClient, utcnow
from connectors.siigo.document import map_invoice, order_reference
from connectors.siigo.errors import REQUEST_ID_HEADER
from connectors.siigo.pipeline import PipelineSettings
from connectors.siigo.schemas import (
    DocumentType,
    PaymentType,
    SiigoCatalogs,
    Tax,
    User,
    check_idempotency_key,
    customer_body,
    invoice_body,
    parse_invoice,
    parse_product,
)

#: Siigo clamps page_size to 10..100 (⚠ the maximum is unconfirmed; 100 is what clients use).
PAGE_SIZE = 100
#: A runaway guard for paging: 10 000 pages of 100 is far beyond any one date range.
MAX_PAGES = 10_000
#: Header the sandbox sets on an idempotent replay (see ``create_invoice``).
REPLAY_HEADER = "idempotent-replayed"


class SiigoConnector(ErpConnector):
    name: ClassVar[str] = "siigo"
    modes: ClassVar[tuple[str, ...]] = limits.MODES

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        partner_id: str,
        limiter: RateLimiter | None = None,
        timeout: float | None = 30.0,
        invoice_timeout: float = 120.0,
        catalog_ttl: float = 3600.0,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], datetime] = utcnow,
        requests_per_minute: int = limits.REQUESTS[limits.PRODUCTION],
        rate_window_seconds: float = limits.WINDOW_SECONDS,
    ) -> None:
        #: A production company's budget (per ``rate_window_seconds``, a minute unless a
        #: test shortens it); a test company's is Siigo's 10 over the same window.
        self.requests_per_minute = requests_per_minute
        self.rate_window_seconds = rate_window_seconds
        self.client = SiigoClient(
            http,
            base_url=base_url,
            partner_id=partner_id,
            limiter=limiter,
            timeout=timeout,
            clock=clock,
            budget=self.rate_budget(None),
        )
        # Siigo asks for 120 s or more before giving up on a document creation.
        self.invoice_timeout = invoice_timeout
        self.catalog_ttl = catalog_ttl
        self.page_size = page_size
        self._catalogs: dict[str, tuple[float, SiigoCatalogs]] = {}
        self._catalog_locks: dict[str, asyncio.Lock] = {}

    # --- session --------------------------------------------------------------------

    def build_document(
        self, order: Order, settings: PipelineRules, mappings: Mappings, invoice_date: date
    ) -> ErpDocument:
        if not isinstance(settings, PipelineSettings):
            raise TypeError(
                f"Siigo pipelines carry {PipelineSettings.__qualname__}, not {settings!r}"
            )
        return map_invoice(order, settings, mappings, invoice_date)

    def order_reference(self, invoice: Invoice, marketplace: str) -> str | None:
        return order_reference(invoice, marketplace)

    def rate_budget(self, mode: str | None, requests: int | None = None) -> RateBudget:
        return limits.budget(
            mode,
            requests,
            production_requests=self.requests_per_minute,
            window_seconds=self.rate_window_seconds,
        )

    async def authenticate(self, credentials: ErpCredentials) -> ErpSession:
        return await self.client.authenticate(credentials)

    def account_id(self, credentials: ErpCredentials) -> str:
        # One API user belongs to one company, and /auth names no company id.
        return credentials.username.lower()

    # --- customers ------------------------------------------------------------------

    async def find_customer(
        self, credentials: ErpCredentials, identification: str, branch_office: int = 0
    ) -> CustomerRef | None:
        """The customer with this identification and branch office, or None."""
        response = await self.client.request(
            credentials,
            "GET",
            "/v1/customers",
            params={"identification": identification, "branch_office": branch_office},
        )
        for customer in _results(response):
            if (
                str(customer.get("identification")) == identification
                and int(customer.get("branch_office") or 0) == branch_office
            ):
                return CustomerRef(id=str(customer["id"]), identification=identification)
        return None

    async def ensure_customer(
        self, credentials: ErpCredentials, customer: CustomerSpec
    ) -> CustomerRef:
        body = customer_body(customer)
        identification = body["identification"]
        found = await self.find_customer(credentials, identification)
        if found is not None:
            return found
        try:
            response = await self.client.request(credentials, "POST", "/v1/customers", body=body)
        except DataError as exc:
            if exc.code != "already_exists":
                raise
            # Another worker created it between our search and our POST.
            found = await self.find_customer(credentials, identification)
            if found is None:
                raise
            return found
        data = response.json()
        return CustomerRef(id=str(data["id"]), identification=identification, created=True)

    # --- products and catalogs ------------------------------------------------------

    async def find_product(self, credentials: ErpCredentials, code: str) -> Product | None:
        response = await self.client.request(
            credentials, "GET", "/v1/products", params={"code": code}
        )
        for product in _results(response):
            if str(product.get("code")) == code:
                return parse_product(product)
        return None

    async def catalogs(
        self, credentials: ErpCredentials, *, refresh: bool = False
    ) -> SiigoCatalogs:
        """The account's sales-invoice document types, payment types, taxes and users,
        cached per account for ``catalog_ttl`` seconds (Siigo asks clients to cache them)."""
        username = credentials.username
        cached = self._catalogs.get(username)
        if cached and not refresh and time.monotonic() < cached[0]:
            return cached[1]
        lock = self._catalog_locks.setdefault(username, asyncio.Lock())
        async with lock:
            cached = self._catalogs.get(username)
            if cached and not refresh and time.monotonic() < cached[0]:
                return cached[1]
            catalogs = await self._load_catalogs(credentials)
            self._catalogs[username] = (time.monotonic() + self.catalog_ttl, catalogs)
            return catalogs

    def forget_catalogs(self, username: str) -> None:
        self._catalogs.pop(username, None)

    async def _load_catalogs(self, credentials: ErpCredentials) -> SiigoCatalogs:
        request = self.client.request
        document_types = await request(
            credentials, "GET", "/v1/document-types", params={"type": "FV"}
        )
        payment_types = await request(
            credentials, "GET", "/v1/payment-types", params={"document_type": "FV"}
        )
        taxes = await request(credentials, "GET", "/v1/taxes")
        users = [user async for user in self._pages(credentials, "/v1/users", {})]
        return SiigoCatalogs(
            document_types=[DocumentType.model_validate(d) for d in _array(document_types)],
            payment_types=[PaymentType.model_validate(p) for p in _array(payment_types)],
            taxes=[Tax.model_validate(t) for t in _array(taxes, decimals=True)],
            users=[User.model_validate(u) for u in users],
        )

    # --- invoices -------------------------------------------------------------------

    async def create_invoice(
        self, credentials: ErpCredentials, draft: InvoiceDraft, idempotency_key: str
    ) -> Invoice:
        key = check_idempotency_key(idempotency_key)
        body = invoice_body(draft)
        response = await self.client.request(
            credentials,
            "POST",
            "/v1/invoices",
            body=body,
            headers={"Idempotency-Key": key},
            timeout_seconds=self.invoice_timeout,
        )
        # ⚠ Siigo does not document how it answers a replay (same key, invoice already
        # created). A create is 201; a 200, or the replay header, marks the earlier invoice.
        replayed = response.status_code == 200 or (
            response.headers.get(REPLAY_HEADER, "").lower() == "true"
        )
        return _invoice(response, idempotency_key=key, replayed=replayed)

    async def get_invoice(self, credentials: ErpCredentials, invoice_id: str) -> Invoice:
        response = await self.client.request(
            credentials, "GET", f"/v1/invoices/{quote(invoice_id, safe='')}"
        )
        return _invoice(response)

    async def list_invoices(
        self, credentials: ErpCredentials, date_from: date, date_to: date
    ) -> AsyncIterator[Invoice]:
        params = {"date_start": date_from.isoformat(), "date_end": date_to.isoformat()}
        async for data, raw in self._pages(credentials, "/v1/invoices", params, with_raw=True):
            yield parse_invoice(data, raw)

    async def _pages(
        self,
        credentials: ErpCredentials,
        path: str,
        params: dict[str, str],
        *,
        with_raw: bool = False,
    ) -> AsyncIterator[Any]:
        """Every result of a paged list, page 1 to the end."""
        for page in range(1, MAX_PAGES + 1):
            response = await self.client.request(
                credentials,
                "GET",
                path,
                params={**params, "page": page, "page_size": self.page_size},
            )
            data = _decimal_json(response)
            results = data.get("results") or []
            raws = (response.json().get("results") or []) if with_raw else results
            for item, raw in zip(results, raws, strict=True):
                yield (item, raw) if with_raw else item
            pagination = data.get("pagination") or {}
            total = int(pagination.get("total_results") or 0)
            page_size = int(pagination.get("page_size") or self.page_size)
            if not results or page * page_size >= total:
                return
        raise PermanentError(f"Siigo {path} did not end after {MAX_PAGES} pages")


def _decimal_json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = wire.loads(response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PermanentError(
            "Siigo answered with an unexpected body",
            status_code=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        )
    return data


def _results(response: httpx.Response) -> list[dict[str, Any]]:
    results = _decimal_json(response).get("results") or []
    return [r for r in results if isinstance(r, dict)]


def _array(response: httpx.Response, *, decimals: bool = False) -> list[dict[str, Any]]:
    """A catalog: a flat array, or (defensively) a paged envelope."""
    data = wire.loads(response.content) if decimals else response.json()
    if isinstance(data, dict):
        data = data.get("results") or []
    if not isinstance(data, list):
        raise PermanentError("Siigo answered a catalog with an unexpected body")
    return [d for d in data if isinstance(d, dict)]


def _invoice(
    response: httpx.Response, *, idempotency_key: str | None = None, replayed: bool = False
) -> Invoice:
    data = _decimal_json(response)
    try:
        return parse_invoice(
            data, response.json(), idempotency_key=idempotency_key, replayed=replayed
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentError(
            f"Siigo answered with an invoice it could not be read from: {exc}",
            status_code=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        ) from exc


__all__ = ["PAGE_SIZE", "SiigoConnector"]
