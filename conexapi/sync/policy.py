"""What to do with an order as it is now. Per pipeline, not per marketplace."""

from __future__ import annotations

from enum import StrEnum

from connectors.documents import PipelineRules
from connectors.models import Order, OrderStatus


class Decision(StrEnum):
    invoice = "invoice"
    wait_payment = "wait_payment"
    close = "close"
    already_invoiced = "already_invoiced"
    flag_cancelled_after_invoice = "flag_cancelled_after_invoice"
    flag_fraud = "flag_fraud"


def decide(order: Order, invoiced: bool, settings: PipelineRules) -> Decision:
    cancelled = order.status in (OrderStatus.cancelled, OrderStatus.invalid)
    if invoiced:
        # A credit note is a later feature; until then a person must see it.
        return Decision.flag_cancelled_after_invoice if cancelled else Decision.already_invoiced
    if cancelled:
        return Decision.close
    if order.fraud_suspected:
        return Decision.flag_fraud
    if settings.invoice_on == "paid" and order.status is OrderStatus.paid:
        return Decision.invoice
    return Decision.wait_payment
