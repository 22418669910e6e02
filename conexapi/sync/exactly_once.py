"""One ERP document per order, whether or not the ERP honours idempotency keys."""

from __future__ import annotations

from connectors.base import ErpConnector
from connectors.errors import TransientError
from connectors.models import ErpCredentials, Invoice, InvoiceDraft


async def create_once(
    erp: ErpConnector, credentials: ErpCredentials, draft: InvoiceDraft, key: str, attempt: int
) -> Invoice:
    """Create the order's document exactly once.

    The key was reserved (committed on the order) by the claim, before any call goes out.
    An ERP that honours it returns the first document on a repeat, so a retry simply posts
    again. One that does not may have created the document on an attempt that timed out or
    got a 5xx: the document is looked up under the key before any repeat, right after the
    failure and at the start of every later attempt, and only a document not found is
    posted.
    """
    if erp.honours_idempotency_key:
        return await erp.create_invoice(credentials, draft, key)
    if attempt > 1:
        earlier = await erp.find_invoice(credentials, key, draft)
        if earlier is not None:
            return earlier
    try:
        return await erp.create_invoice(credentials, draft, key)
    except TransientError:
        # A timeout or a 5xx says nothing of whether the document exists.
        found = await erp.find_invoice(credentials, key, draft)
        if found is None:
            raise
        return found
