"""An ERP connector that ignores idempotency keys, for the runner's exactly-once tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import ClassVar

from connectors.base import ErpConnector
from connectors.documents import ErpDocument, Mappings, PipelineRules
from connectors.errors import TransientError
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

# --- an ERP that ignores idempotency keys ---------------------------------------------------


class KeylessErp(ErpConnector):
    """An ERP whose create ignores idempotency keys, over an in-memory ledger: every POST
    makes a document, which keeps the key only as a marker :meth:`find_invoice` lists by.

    The document, customers, products and budgets are ``base``'s (the pipeline's real ERP
    connector), so a pipeline can run through it unchanged. Faults: ``lost_answers`` creates
    that make the document and then time out; ``failing_lookups`` lookups that time out.
    """

    name: ClassVar[str] = "keyless"
    honours_idempotency_key: ClassVar[bool] = False

    def __init__(self, base: ErpConnector) -> None:
        self.base = base
        self.modes = base.modes
        self.documents: list[Invoice] = []
        #: The key of every create the ERP received, in order.
        self.posts: list[str] = []
        self.lookups = 0
        self.lost_answers = 0
        self.failing_lookups = 0

    def build_document(
        self, order: Order, settings: PipelineRules, mappings: Mappings, invoice_date: date
    ) -> ErpDocument:
        return self.base.build_document(order, settings, mappings, invoice_date)

    def order_reference(self, invoice: Invoice, marketplace: str) -> str | None:
        return self.base.order_reference(invoice, marketplace)

    def rate_budget(self, mode: str | None, requests: int | None = None) -> RateBudget:
        return self.base.rate_budget(mode, requests)

    async def authenticate(self, credentials: ErpCredentials) -> ErpSession:
        return await self.base.authenticate(credentials)

    def account_id(self, credentials: ErpCredentials) -> str:
        return self.base.account_id(credentials)

    async def ensure_customer(
        self, credentials: ErpCredentials, customer: CustomerSpec
    ) -> CustomerRef:
        return await self.base.ensure_customer(credentials, customer)

    async def find_product(self, credentials: ErpCredentials, code: str) -> Product | None:
        return await self.base.find_product(credentials, code)

    async def create_invoice(
        self, credentials: ErpCredentials, draft: InvoiceDraft, idempotency_key: str
    ) -> Invoice:
        self.posts.append(idempotency_key)
        number = len(self.documents) + 1
        invoice = Invoice(
            id=f"doc-{number}",
            name=f"FV-{number}",
            number=number,
            date=draft.date,
            customer_identification=draft.customer_identification,
            total=sum((p.value for p in draft.payments), Decimal(0)),
            raw={"observations": draft.observations, "marker": idempotency_key},
        )
        self.documents.append(invoice)
        if self.lost_answers:
            self.lost_answers -= 1
            raise TransientError("the ERP did not answer in time", code="timeout")
        return invoice

    async def find_invoice(
        self, credentials: ErpCredentials, idempotency_key: str, draft: InvoiceDraft
    ) -> Invoice | None:
        self.lookups += 1
        if self.failing_lookups:
            self.failing_lookups -= 1
            raise TransientError("the ERP did not answer in time", code="timeout")
        found = [d for d in self.documents if d.raw.get("marker") == idempotency_key]
        return found[0] if found else None

    async def get_invoice(self, credentials: ErpCredentials, invoice_id: str) -> Invoice:
        return next(d for d in self.documents if d.id == invoice_id)

    async def list_invoices(
        self, credentials: ErpCredentials, date_from: date, date_to: date
    ) -> AsyncIterator[Invoice]:
        for document in list(self.documents):
            if date_from <= document.date <= date_to:
                yield document
